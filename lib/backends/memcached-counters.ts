/**
 * The counter fast path for strategies with a `WindowCounterPlan` (FixedWindow,
 * SlidingWindowCounter): the current window's counter `<key>:<windowId>` is charged with one
 * atomic incr-with-initial-and-expiration (one round trip; memcached creates the key holding
 * `cost` with the window's TTL, and later increments leave that TTL alone); other windows the plan
 * reads are fetched in parallel. A rejection takes its cost back with decr, so rejected requests
 * consume nothing (memcached refuses negative deltas: decr is the only way down). A refund
 * decrements the counter of the window its charge was made in, while the plan still reads it.
 * Decisions are stamped with `now`, this host's clock, which names the windows.
 */
import type { Decision } from '../../types/decision.js'
import type { WindowCounterPlan } from '../../types/strategy.js'
import { expirationOf } from './memcached-keys.js'
import { NO_CREATE, type MemcachedProtocol } from './memcached-protocol.js'
import type { EvaluateOp } from './throttle-backend.js'

/** What a decision needs from the backend: the connection and the key layout in force. */
export interface CounterContext {
  readonly protocol: MemcachedProtocol
  /** Storage key of a logical key (namespace, generation, hashing applied). */
  storageKey(logicalKey: string): string
}

/** A charged counter: what to decrement to take the charge back. */
export interface CounterCharge {
  readonly key: string
  /** The cost actually added (0 when nothing was charged). */
  readonly cost: number
  readonly decision: Decision
}

/** Storage keys of the windows the plan reads, the current one first. */
function windowKeys (context: CounterContext, op: EvaluateOp, plan: WindowCounterPlan, now: number): string[] {
  const windowId = Math.floor(now / op.windowMs)
  return plan.windows.map((offset) => context.storageKey(`${op.key}:${windowId + offset}`))
}

async function readCount (protocol: MemcachedProtocol, key: string): Promise<number> {
  const stored = await protocol.get(key)
  if (stored === null) return 0
  const count = Number.parseInt(stored.value, 10)
  return Number.isFinite(count) ? count : 0
}

/** Charges `op.cost` on the current window and decides; the caller takes rejected charges back. */
export async function chargeCounter (context: CounterContext, op: EvaluateOp, now: number): Promise<CounterCharge> {
  const plan = op.strategy.counter!
  const keys = windowKeys(context, op, plan, now)
  if (op.cost > op.limit) {
    // No window can ever hold this cost: answer without charging.
    return { key: keys[0]!, cost: 0, decision: await decideFromReads(context, op, plan, keys, now) }
  }
  const expiration = expirationOf(plan.ttlMs(now, op.windowMs), now)
  const [charged, ...others] = await Promise.allSettled([
    context.protocol.counter('increment', keys[0]!, op.cost, op.cost, expiration),
    ...keys.slice(1).map(async (key) => await readCount(context.protocol, key))
  ])
  if (charged!.status === 'rejected') throw charged!.reason
  const failedRead = others.find((o) => o.status === 'rejected')
  if (failedRead !== undefined) {
    await takeBack(context, [{ key: keys[0]!, cost: op.cost }])
    throw (failedRead as PromiseRejectedResult).reason
  }
  const counts = [charged!.value!, ...others.map((o) => (o as PromiseFulfilledResult<number>).value)]
  return { key: keys[0]!, cost: op.cost, decision: stamped(plan.decide(counts, now, op.limit, op.windowMs, op.cost), now) }
}

/**
 * Takes charges back. A failed take-back leaves the charge in place (the client is limited
 * slightly early, never late), like a failed refund. Decr never creates a key that expired meanwhile.
 */
export async function takeBack (context: CounterContext, charges: ReadonlyArray<Pick<CounterCharge, 'key' | 'cost'>>): Promise<void> {
  await Promise.all(charges.map(async (charge) => {
    if (charge.cost === 0) return
    await context.protocol.counter('decrement', charge.key, charge.cost, 0, NO_CREATE).catch(() => null)
  }))
}

/** Decides without charging (mode 'check'). */
export async function checkCounter (context: CounterContext, op: EvaluateOp, now: number): Promise<Decision> {
  const plan = op.strategy.counter!
  return await decideFromReads(context, op, plan, windowKeys(context, op, plan, now), now)
}

/**
 * Gives `op.cost` back (mode 'refund') to the counter of the window the charge was made in,
 * `<key>:<floor(chargedAt / windowMs)>`, as long as the plan still reads that window (the current
 * one; the previous one too for SlidingWindowCounter) or it lies ahead of this clock (a clock that
 * stepped back). A charge of a window the plan no longer reads holds nothing: no counter is
 * touched. Strategies without `refund` are left unchanged.
 */
export async function refundCounter (context: CounterContext, op: EvaluateOp, now: number): Promise<Decision> {
  const plan = op.strategy.counter!
  const current = Math.floor(now / op.windowMs)
  const offset = Math.floor((op.chargedAt ?? now) / op.windowMs) - current
  const read = plan.windows.indexOf(offset)
  if (op.strategy.refund === undefined || op.cost === 0 || (read === -1 && offset < 0)) {
    return await checkCounter(context, { ...op, cost: 0 }, now)
  }
  const keys = windowKeys(context, op, plan, now)
  const chargedKey = read === -1 ? context.storageKey(`${op.key}:${current + offset}`) : keys[read]!
  const [left, ...counts] = await Promise.all([
    context.protocol.counter('decrement', chargedKey, op.cost, 0, NO_CREATE),
    ...keys.map(async (key, i) => i === read ? 0 : await readCount(context.protocol, key))
  ])
  if (read !== -1) counts[read] = left ?? 0
  const decision = plan.decide(counts as number[], now, op.limit, op.windowMs, 0)
  return { ...decision, allowed: true, retryAfterMs: 0, decidedAt: now }
}

/** The decision with the time it was made at. */
function stamped (decision: Decision, now: number): Decision {
  decision.decidedAt = now
  return decision
}

async function decideFromReads (context: CounterContext, op: EvaluateOp, plan: WindowCounterPlan, keys: string[], now: number): Promise<Decision> {
  const counts = await Promise.all(keys.map(async (key) => await readCount(context.protocol, key)))
  counts[0] = counts[0]! + op.cost
  return stamped(plan.decide(counts, now, op.limit, op.windowMs, op.cost), now)
}
