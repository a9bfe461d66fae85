/**
 * Reference models: the simplest brute-force definition of each strategy, written independently
 * of the implementations (no shared helpers, no gcd scaling, BigInt arithmetic). Property tests
 * compare the strategies against them on random timelines.
 *
 * A model is mutable: `allows(now, cost)` asks without consuming, `hit(now, cost)` consumes when
 * allowed, `refund(now, chargedAt, cost)` gives back an admitted charge made at `chargedAt`. Time
 * never goes backwards inside a model timeline (boundary tests cover that).
 *
 * Refunds: the window models forget the charge, as if it had never been made (a charge from a
 * window or log span that is over then changes nothing). The bucket models give back the charge's
 * cost less everything the bucket drained since it was made, never beyond a full bucket: the drain
 * is independent of charges, so nothing finer can be known from the bucket's level.
 */
import {
  Concurrency, FixedWindow, GCRA, LeakyBucket, LeakyBucketWithQueue, SlidingWindowCounter, SlidingWindowLog,
  TokenBucket, TokenBucketWithDebt
} from '../../lib/index.js'
import type { Strategy } from '../../types/strategy.js'

export interface Model {
  allows(now: number, cost: number): boolean
  hit(now: number, cost: number): boolean
  /** Gives back an admitted charge of `cost` made at `chargedAt` (<= now), not refunded before. */
  refund(now: number, chargedAt: number, cost: number): void
  /** True when the client is back to a fresh state (nothing of the past counts any more). */
  isFull(now: number): boolean
  /** The largest cost that can ever pass. */
  readonly maxCost: number
  /** Queueing models: the wait of an admitted request. */
  delay?(now: number, cost: number): number
}

/** A strategy configuration the tests build both sides from. */
export interface Subject {
  readonly label: string
  readonly strategy: Strategy
  model(limit: number, windowMs: number): Model
  /** FixedWindow reports the window end even when idle; the others report 0 when nothing counts. */
  readonly resetIsTight: boolean
}

/** Accepted (time, cost) records, shared by the window models. */
class AcceptedLog {
  readonly records: Array<[number, number]> = []
  sum (predicate: (t: number) => boolean): number {
    let total = 0
    for (const [t, c] of this.records) if (predicate(t)) total += c
    return total
  }
}

function fixedWindowModel (limit: number, windowMs: number): Model {
  const log = new AcceptedLog()
  const windowOf = (t: number): number => Math.floor(t / windowMs)
  const used = (now: number): number => log.sum((t) => windowOf(t) === windowOf(now))
  const allows = (now: number, cost: number): boolean => used(now) + cost <= limit
  return {
    maxCost: limit,
    allows,
    hit (now, cost) {
      if (!allows(now, cost)) return false
      log.records.push([now, cost])
      return true
    },
    refund (_now, chargedAt, cost) {
      log.records.push([chargedAt, -cost])
    },
    isFull: (now) => used(now) === 0
  }
}

function slidingCounterModel (limit: number, windowMs: number): Model {
  const log = new AcceptedLog()
  const windowOf = (t: number): number => Math.floor(t / windowMs)
  const allows = (now: number, cost: number): boolean => {
    const k = windowOf(now)
    const current = log.sum((t) => windowOf(t) === k)
    const previous = log.sum((t) => windowOf(t) === k - 1)
    const elapsed = now - k * windowMs
    // estimate = previous·(W − elapsed)/W + current; compared multiplied by W.
    return previous * (windowMs - elapsed) + (current + cost) * windowMs <= limit * windowMs
  }
  return {
    maxCost: limit,
    allows,
    hit (now, cost) {
      if (!allows(now, cost)) return false
      log.records.push([now, cost])
      return true
    },
    refund (_now, chargedAt, cost) {
      log.records.push([chargedAt, -cost])
    },
    isFull: (now) => log.sum((t) => windowOf(t) >= windowOf(now) - 1) === 0
  }
}

function slidingLogModel (limit: number, windowMs: number): Model {
  const log = new AcceptedLog()
  const inWindow = (now: number) => (t: number): boolean => t > now - windowMs && t <= now
  const allows = (now: number, cost: number): boolean => log.sum(inWindow(now)) + cost <= limit
  return {
    maxCost: limit,
    allows,
    hit (now, cost) {
      if (!allows(now, cost)) return false
      log.records.push([now, cost])
      return true
    },
    refund (_now, chargedAt, cost) {
      log.records.push([chargedAt, -cost])
    },
    isFull: (now) => log.sum(inWindow(now)) === 0
  }
}

/**
 * Slots in flight: each admitted request takes `cost` slots as one lease, which counts until it is
 * released or until `leaseMs` (the rate's window) after it was taken. A release hands back that
 * request's own lease.
 */
function concurrencyModel (limit: number, leaseMs: number): Model {
  const leases: Array<{ takenAt: number, cost: number }> = []
  const inFlight = (now: number): number => {
    let total = 0
    for (const lease of leases) if (lease.takenAt + leaseMs > now) total += lease.cost
    return total
  }
  const allows = (now: number, cost: number): boolean => inFlight(now) + cost <= limit
  return {
    maxCost: limit,
    allows,
    hit (now, cost) {
      if (!allows(now, cost)) return false
      if (cost > 0) leases.push({ takenAt: now, cost })
      return true
    },
    refund (_now, chargedAt, cost) {
      const i = leases.findIndex((lease) => lease.takenAt === chargedAt && lease.cost === cost)
      if (i >= 0) leases.splice(i, 1)
    },
    isFull: (now) => inFlight(now) === 0
  }
}

/**
 * What a bucket charge of `cost` still holds after `elapsed` ms, in units of 1/windowMs of cost:
 * its cost less what the bucket drained (`limit` units per ms) meanwhile, never below 0.
 */
function stillHeld (cost: number, W: bigint, L: bigint, elapsed: number): bigint {
  const held = BigInt(cost) * W - BigInt(elapsed) * L
  return held > 0n ? held : 0n
}

/**
 * Token bucket with exact rational refill: `tokens` is held multiplied by windowMs (an integer), the
 * refill adds `limit` per elapsed ms, capped at `capacity`. Spending may go down to `-debt`.
 */
function tokenBucketModel (limit: number, windowMs: number, capacity: number, debt: number): Model {
  const W = BigInt(windowMs)
  const L = BigInt(limit)
  const full = BigInt(capacity) * W
  let tokens = full // × W
  let last: number | undefined
  const refilled = (now: number): bigint => {
    if (last === undefined) return full
    const value = tokens + BigInt(now - last) * L
    return value > full ? full : value
  }
  const allows = (now: number, cost: number): boolean => refilled(now) - BigInt(cost) * W >= -BigInt(debt) * W
  return {
    maxCost: limit === 0 ? 0 : capacity + debt,
    allows: (now, cost) => limit === 0 ? cost === 0 : allows(now, cost),
    hit (now, cost) {
      if (limit === 0) return cost === 0
      if (!allows(now, cost)) return false
      tokens = refilled(now) - BigInt(cost) * W
      last = now
      return true
    },
    refund (now, chargedAt, cost) {
      if (limit === 0) return
      const value = refilled(now) + stillHeld(cost, W, L, now - chargedAt)
      tokens = value > full ? full : value
      last = now
    },
    isFull: (now) => limit === 0 || refilled(now) === full
  }
}

/**
 * GCRA by virtual scheduling: TAT (× limit, an integer) is when the next unit of cost is due;
 * a request conforms when max(TAT, now) + cost·T − now <= burst·T, with T = windowMs / limit.
 */
function gcraModel (limit: number, windowMs: number, burst: number): Model {
  const L = BigInt(limit)
  const W = BigInt(windowMs)
  let tat = 0n // × L
  const start = (now: number): bigint => (tat > BigInt(now) * L ? tat : BigInt(now) * L)
  const allows = (now: number, cost: number): boolean => start(now) + BigInt(cost) * W - BigInt(now) * L <= BigInt(burst) * W
  return {
    maxCost: limit === 0 ? 0 : burst,
    allows: (now, cost) => limit === 0 ? cost === 0 : allows(now, cost),
    hit (now, cost) {
      if (limit === 0) return cost === 0
      if (!allows(now, cost)) return false
      tat = start(now) + BigInt(cost) * W
      return true
    },
    refund (now, chargedAt, cost) {
      if (limit === 0) return
      const back = tat - stillHeld(cost, W, L, now - chargedAt)
      tat = back > BigInt(now) * L ? back : BigInt(now) * L
    },
    isFull: (now) => limit === 0 || tat <= BigInt(now) * L
  }
}

/** Leaky bucket as a meter: the level (× windowMs) drains `limit` per ms; a request must not overflow `burst`. */
function leakyMeterModel (limit: number, windowMs: number, burst: number): Model {
  const L = BigInt(limit)
  const W = BigInt(windowMs)
  let level = 0n
  let last = 0
  const drained = (now: number): bigint => {
    const value = level - BigInt(now - last) * L
    return value < 0n ? 0n : value
  }
  const allows = (now: number, cost: number): boolean => drained(now) + BigInt(cost) * W <= BigInt(burst) * W
  return {
    maxCost: limit === 0 ? 0 : burst,
    allows: (now, cost) => limit === 0 ? cost === 0 : allows(now, cost),
    hit (now, cost) {
      if (limit === 0) return cost === 0
      if (!allows(now, cost)) return false
      level = drained(now) + BigInt(cost) * W
      last = now
      return true
    },
    refund (now, chargedAt, cost) {
      if (limit === 0) return
      const value = drained(now) - stillHeld(cost, W, L, now - chargedAt)
      level = value < 0n ? 0n : value
      last = now
    },
    isFull: (now) => limit === 0 || drained(now) === 0n
  }
}

/**
 * A FIFO of unit slots, one every T = windowMs / limit ms (times × limit). A request of cost c takes
 * the next c slots and proceeds at the start of its last one; it is admitted when that is at most
 * maxDelayMs away.
 */
function queueModel (limit: number, windowMs: number, maxDelayMs: number): Model {
  const L = BigInt(limit)
  const W = BigInt(windowMs)
  let nextFree = 0n // × L
  const first = (now: number): bigint => (nextFree > BigInt(now) * L ? nextFree : BigInt(now) * L)
  const lastStart = (now: number, cost: number): bigint => first(now) + BigInt(cost - 1) * W - BigInt(now) * L
  const allows = (now: number, cost: number): boolean => lastStart(now, cost) <= BigInt(maxDelayMs) * L
  const ceilDiv = (a: bigint, b: bigint): bigint => (a <= 0n ? 0n : (a + b - 1n) / b)
  return {
    maxCost: limit === 0 ? 0 : Math.floor(maxDelayMs * limit / windowMs) + 1,
    allows: (now, cost) => limit === 0 ? cost === 0 : allows(now, cost),
    hit (now, cost) {
      if (limit === 0) return cost === 0
      if (!allows(now, cost)) return false
      nextFree = first(now) + BigInt(cost) * W
      return true
    },
    refund (now, chargedAt, cost) {
      if (limit === 0) return
      const back = nextFree - stillHeld(cost, W, L, now - chargedAt)
      nextFree = back > BigInt(now) * L ? back : BigInt(now) * L
    },
    isFull: (now) => limit === 0 || nextFree <= BigInt(now) * L,
    delay: (now, cost) => (limit === 0 || cost === 0 ? 0 : Number(ceilDiv(lastStart(now, cost), L)))
  }
}

/** Every strategy, with a few option variants, paired with its model. */
export function subjects (): Subject[] {
  const list: Subject[] = [
    { label: 'FixedWindow', strategy: new FixedWindow(), model: fixedWindowModel, resetIsTight: false },
    { label: 'SlidingWindowCounter', strategy: new SlidingWindowCounter(), model: slidingCounterModel, resetIsTight: true },
    { label: 'SlidingWindowLog', strategy: new SlidingWindowLog(), model: slidingLogModel, resetIsTight: true },
    { label: 'Concurrency', strategy: new Concurrency(), model: concurrencyModel, resetIsTight: true },
    { label: 'TokenBucket', strategy: new TokenBucket(), model: (l, w) => tokenBucketModel(l, w, l, 0), resetIsTight: true },
    { label: 'TokenBucket({ burst: 3 })', strategy: new TokenBucket({ burst: 3 }), model: (l, w) => tokenBucketModel(l, w, 3, 0), resetIsTight: true },
    { label: 'TokenBucketWithDebt', strategy: new TokenBucketWithDebt(), model: (l, w) => tokenBucketModel(l, w, l, 0), resetIsTight: true },
    {
      label: 'TokenBucketWithDebt({ burst: 4, maxDebt: 3 })',
      strategy: new TokenBucketWithDebt({ burst: 4, maxDebt: 3 }),
      model: (l, w) => tokenBucketModel(l, w, 4, 3),
      resetIsTight: true
    },
    { label: 'LeakyBucket', strategy: new LeakyBucket(), model: (l, w) => leakyMeterModel(l, w, 1), resetIsTight: true },
    { label: 'LeakyBucket({ burst: 5 })', strategy: new LeakyBucket({ burst: 5 }), model: (l, w) => leakyMeterModel(l, w, 5), resetIsTight: true },
    { label: 'GCRA', strategy: new GCRA(), model: (l, w) => gcraModel(l, w, 1), resetIsTight: true },
    { label: 'GCRA({ burst: 4 })', strategy: new GCRA({ burst: 4 }), model: (l, w) => gcraModel(l, w, 4), resetIsTight: true },
    { label: 'LeakyBucketWithQueue', strategy: new LeakyBucketWithQueue(), model: (l, w) => queueModel(l, w, 1000), resetIsTight: true },
    {
      label: 'LeakyBucketWithQueue({ maxDelayMs: 150 })',
      strategy: new LeakyBucketWithQueue({ maxDelayMs: 150 }),
      model: (l, w) => queueModel(l, w, 150),
      resetIsTight: true
    },
    {
      label: 'LeakyBucketWithQueue({ maxDelayMs: 0 })',
      strategy: new LeakyBucketWithQueue({ maxDelayMs: 0 }),
      model: (l, w) => queueModel(l, w, 0),
      resetIsTight: true
    }
  ]
  return list
}
