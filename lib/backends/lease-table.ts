/**
 * Leases (the throttle option `lease`): this process takes K units of a key's budget in one
 * round trip (a hit of cost K through the strategy's own atomic operation) and then decides hits
 * on that key here, with no round trip, until the units are spent or the lease ends. The guard of
 * a network backend consults the table for every op that carries a `lease` policy.
 *
 * - K adapts: it is the units this process asked on the key over the last lease period, scaled
 *   to `ttlMs`, so a key seen less than about twice per `ttlMs` stays exact (K = the cost: a plain
 *   pass-through); capped by `maxUnits` and `maxShare × limit`, and by half of what the store had
 *   left at the last take, so the last units are not parked in one process.
 * - A take the store rejects while the cost alone might fit is asked again at the cost alone.
 * - Window strategies: a lease ends with the window it was charged in, measured from before the
 *   take was sent, so a unit charged in one window is never spent in the next. Once half spent it
 *   is refilled ahead, in the background; units of the same window join it (1.5 K at most). A
 *   window take also covers the hits waiting here for the key, which spend those units at once.
 * - Units a lease did not use are given back through the strategy's refund when that is exact
 *   (`givesBack`), when the lease ends early (`ttlMs`), on `close()`; otherwise they lapse.
 * - Several ops in one call stay all-or-nothing: units taken from local leases for a call the
 *   store rejects go back to those leases.
 * Specification: docs/leases.md.
 */
import type { EvaluateMode, EvaluateOp, LeasePolicy } from '../../types/backend.js'
import type { Decision } from '../../types/decision.js'
import type { Strategy } from '../../types/strategy.js'

/** What `#hit` answers when a take larger than the cost was refused: ask again at the cost alone. */
const RETRY_PLAIN = Symbol('retry plain')

/** Asks the store (through the guard, without leases). */
export type StoreCall = (ops: readonly EvaluateOp[], mode: EvaluateMode) => Promise<Decision[]>

/** What this process knows of one key: its lease (units may be 0) and the demand since it was taken. */
interface Lease {
  readonly policy: LeasePolicy
  readonly strategy: Strategy
  readonly limit: number
  readonly windowMs: number
  /** Unused units held here. */
  units: number
  /**
   * Units the last take brought (with what was left when a refill joined it), at most K̂ (units
   * a take brought for waiting hits are theirs): half spent starts the next refill.
   */
  size: number
  /** Local time just before the take was sent. */
  takenAt: number
  /** Local time from which the units may no longer be spent. */
  endsAt: number
  /** Local time at which the window the units were charged in ends (Infinity: no window). */
  windowEndsAt: number
  /** The store's clock when it decided the take; undefined when the backend did not say. */
  decidedAt: number | undefined
  /** The take's reset time, in ms from `takenAt`. */
  resetMs: number
  /** What the store had left after the take (or after its last answer on the key). */
  storeRemaining: number
  /** Units asked on the key since the take (allowed or not). */
  demand: number
}

/** A take in flight that a hit waits for, and the units of the hit's op on that key. */
interface Wait {
  readonly wait: Promise<unknown>
  readonly key: string
  readonly units: number
}

interface Plan {
  /** Per op: the local lease that answered it, or undefined when the store decides it. */
  readonly local: Array<Lease | undefined>
  /** Per op: the cost the store is asked for (K for a take). */
  readonly sizes: number[]
}

export class LeaseTable {
  /** In insertion order: the first entry is the oldest record. */
  readonly #leases = new Map<string, Lease>()
  /** Takes in flight, by key: hits on the key wait for them rather than take again. */
  readonly #taking = new Map<string, Promise<unknown>>()
  /** Units of the hits waiting in this process for a take on the key: the next window take covers them. */
  readonly #waiting = new Map<string, number>()
  readonly #store: StoreCall

  constructor (store: StoreCall) {
    this.#store = store
  }

  get size (): number {
    return this.#leases.size
  }

  /** Resolves once no take is in flight in this process (refills ahead included). */
  async idle (): Promise<void> {
    while (this.#taking.size > 0) await Promise.all(this.#taking.values())
  }

  /** Unused units held for `key` in this process (0 when none or ended). */
  unitsOf (key: string): number {
    const lease = this.#leases.get(key)
    if (lease === undefined || lease.policy.now() >= lease.endsAt) return 0
    return lease.units
  }

  /**
   * A hit answered here, synchronously, when live leases hold every op's cost (their units are
   * taken); undefined when the store must be asked (nothing is taken then).
   */
  answerLocally (ops: readonly EvaluateOp[]): Decision[] | undefined {
    const now = nowOf(ops)
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      const lease = op.lease === undefined ? undefined : this.#leases.get(op.key)
      if (lease === undefined || op.cost === 0 || lease.units < op.cost || now >= lease.endsAt ||
        lease.strategy !== op.strategy || lease.limit !== op.limit || lease.windowMs !== op.windowMs) return undefined
    }
    const decisions: Decision[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      const lease = this.#leases.get(op.key)!
      lease.units -= op.cost
      lease.demand += op.cost
      decisions[i] = localDecision(lease, op, now)
      this.#refillAhead(op, lease, now)
    }
    return decisions
  }

  async evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    if (mode === 'refund') return await this.#refund(ops)
    if (mode === 'check') return await this.#check(ops)
    let plain = false
    for (;;) {
      const attempt = await this.#hit(ops, plain)
      if (Array.isArray(attempt)) return attempt
      if (attempt === RETRY_PLAIN) plain = true
      else {
        await attempt.wait
        // Counted until this hit runs again, so a take started by a hit resumed before it covers it.
        this.#addWaiting(attempt.key, -attempt.units)
      }
    }
  }

  #addWaiting (key: string, units: number): void {
    const waiting = (this.#waiting.get(key) ?? 0) + units
    if (waiting > 0) this.#waiting.set(key, waiting)
    else this.#waiting.delete(key)
  }

  /**
   * One attempt at a hit: the decisions; RETRY_PLAIN when the store refused a take larger than
   * the cost (the caller asks again with every take at the cost alone); or a take in flight to
   * wait for, when one may bring units for a key this call has none for (one take per key at a
   * time, so no more than one lease's units are ever parked per key in this process).
   */
  async #hit (ops: readonly EvaluateOp[], plain: boolean): Promise<Decision[] | typeof RETRY_PLAIN | Wait> {
    const now = nowOf(ops)
    const plan = this.#plan(ops, now, plain)
    if ('wait' in plan) return plan
    const { local, sizes } = plan
    const storeOps: EvaluateOp[] = []
    for (let i = 0; i < ops.length; i++) {
      if (local[i] === undefined) storeOps.push(storeOp(ops[i]!, sizes[i]!))
    }
    if (storeOps.length === 0) return ops.map((op, i) => localDecision(local[i]!, op, now))
    let answers: Decision[]
    const call = this.#store(storeOps, 'hit')
    const taking = this.#noteTakes(ops, sizes, local, call)
    try {
      answers = await call
    } catch (error) {
      this.#takesDone(taking)
      giveBackLocal(ops, local)
      throw error
    }
    const allowed = answers.every((d) => d.allowed)
    if (!allowed) giveBackLocal(ops, local)
    const decisions: Decision[] = new Array(ops.length)
    let retry = false
    let j = 0
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      const lease = local[i]
      if (lease !== undefined) {
        decisions[i] = localDecision(lease, op, now)
        continue
      }
      const answer = answers[j++]!
      const size = sizes[i]!
      decisions[i] = op.lease === undefined ? answer : this.#learn(op, answer, size, now, allowed)
      if (!answer.allowed && size > op.cost) retry = true
    }
    // After the leases are recorded: the hits waiting for these takes find their units.
    this.#takesDone(taking)
    return retry && !plain ? RETRY_PLAIN : decisions
  }

  /**
   * Refill ahead (window leases only): once half of a lease is spent, the next take (takeSize,
   * as when the lease runs out) is sent in the background, so hits on a hot key rarely wait for
   * one. Its units join the lease when both were charged in the same window of the store (a
   * process then holds at most 1.5 takes' worth), otherwise they start a new lease. One take
   * per key is in flight at a time, as for every take. Bucket leases are not refilled ahead:
   * their units must not outlive `ttlMs` from their own take; nor are the leases of a backend
   * that does not report its clock (the window of a take is not known then).
   */
  #refillAhead (op: EvaluateOp, lease: Lease, now: number): void {
    const policy = lease.policy
    if (!policy.endsWithWindow || lease.decidedAt === undefined || lease.units * 2 > lease.size || this.#taking.has(op.key)) return
    const base = takeSize(lease, op, policy, now)
    if (base <= op.cost) return
    const size = this.#withWaiters(lease, op, policy, now, base)
    const call = this.#store([storeOp(op, size)], 'hit')
    const settled: Promise<unknown> = call.then(([answer]) => {
      // A delete, write or reset of the key while the refill was out ended what it charged.
      if (this.#taking.get(op.key) === settled) this.#joinRefill(op, answer!, size, now)
    }, () => {})
    this.#taking.set(op.key, settled)
    // Registered before any waiter's: the key is free again when the waiters resume.
    settled.then(() => { if (this.#taking.get(op.key) === settled) this.#taking.delete(op.key) }, () => {})
  }

  /** Adds a refill's units to the key's lease when both were charged in the same window of the store; otherwise records them as a lease of their own. */
  #joinRefill (op: EvaluateOp, answer: Decision, size: number, takenAt: number): void {
    const policy = op.lease!
    const now = policy.now()
    const lease = this.#current(op, now)
    if (!answer.allowed) {
      // Nothing was charged; what the store has left shrinks the next take.
      if (lease !== undefined) lease.storeRemaining = Math.min(lease.storeRemaining, answer.remaining)
      return
    }
    const sameWindow = lease !== undefined && lease.decidedAt !== undefined && answer.decidedAt !== undefined &&
      Math.floor(lease.decidedAt / op.windowMs) === Math.floor(answer.decidedAt / op.windowMs) && now < lease.windowEndsAt
    if (!sameWindow) {
      this.#record(op, policy, takenAt, size, answer, 0, lease)
      return
    }
    lease.units += size
    lease.size = Math.min(lease.units, largestLease(op, policy))
    lease.windowEndsAt = Math.min(lease.windowEndsAt, takenAt + answer.resetMs)
    lease.endsAt = Math.min(takenAt + policy.ttlMs, lease.windowEndsAt)
    lease.takenAt = takenAt
    lease.decidedAt = answer.decidedAt
    lease.resetMs = answer.resetMs
    lease.storeRemaining = answer.remaining
    lease.demand = 0
  }

  /** Registers the call's takes (ops asked for more than their cost) as in flight; waiters resume once it settled. */
  #noteTakes (ops: readonly EvaluateOp[], sizes: readonly number[], local: ReadonlyArray<Lease | undefined>, call: Promise<unknown>): Array<[string, Promise<unknown>]> | undefined {
    let taking: Array<[string, Promise<unknown>]> | undefined
    let settled: Promise<unknown> | undefined
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      if (local[i] !== undefined || sizes[i]! <= op.cost) continue
      settled ??= call.then(() => {}, () => {})
      this.#taking.set(op.key, settled)
      ;(taking ??= []).push([op.key, settled])
    }
    return taking
  }

  #takesDone (taking: Array<[string, Promise<unknown>]> | undefined): void {
    if (taking === undefined) return
    for (const [key, settled] of taking) if (this.#taking.get(key) === settled) this.#taking.delete(key)
  }

  /** A take of `size` (takeSize) plus, for a window lease, the units of the hits waiting here for the key (forWaiters). */
  #withWaiters (lease: Lease | undefined, op: EvaluateOp, policy: LeasePolicy, now: number, size: number): number {
    const waiting = this.#waiting.get(op.key)
    return waiting === undefined ? size : size + forWaiters(lease, op, policy, now, size, waiting)
  }

  /** Which ops a live lease answers (taking their units), and the size of each take; or a take in flight to wait for. */
  #plan (ops: readonly EvaluateOp[], now: number, plain: boolean): Plan | Wait {
    const local: Array<Lease | undefined> = new Array(ops.length)
    const sizes: number[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      sizes[i] = op.cost
      const policy = op.lease
      if (policy === undefined) continue
      const lease = this.#current(op, now)
      if (lease !== undefined && op.cost > 0 && lease.units >= op.cost && now < lease.endsAt) {
        lease.units -= op.cost
        local[i] = lease
        this.#refillAhead(op, lease, now)
        continue
      }
      const pending = op.cost > 0 ? this.#taking.get(op.key) : undefined
      if (pending !== undefined) {
        giveBackLocal(ops, local)
        this.#addWaiting(op.key, op.cost)
        return { wait: pending, key: op.key, units: op.cost }
      }
      if (!plain && op.cost > 0) sizes[i] = this.#withWaiters(lease, op, policy, now, takeSize(lease, op, policy, now))
    }
    if (!plain) {
      for (const op of ops) {
        if (op.lease === undefined) continue
        const lease = this.#leases.get(op.key)
        if (lease !== undefined) lease.demand += op.cost
      }
    }
    return { local, sizes }
  }

  /**
   * The key's record if it was made for this op's strategy and rate; a record that ended or no
   * longer fits gives back its unused units first (where that is exact).
   */
  #current (op: EvaluateOp, now: number): Lease | undefined {
    const lease = this.#leases.get(op.key)
    if (lease === undefined) return undefined
    const fits = lease.strategy === op.strategy && lease.limit === op.limit && lease.windowMs === op.windowMs
    // Not awaited: a refund that fails leaves the units to lapse.
    if (lease.units > 0 && (!fits || now >= lease.endsAt)) this.#giveBack(op.key, lease, now).catch(() => {})
    if (fits) return lease
    this.#leases.delete(op.key)
    return undefined
  }

  /** Records the store's answer to a take (or a plain hit) and reports it from the lease's view. */
  #learn (op: EvaluateOp, answer: Decision, size: number, now: number, committed: boolean): Decision {
    const policy = op.lease!
    const previous = this.#current(op, now)
    if (!committed) {
      if (answer.allowed) return withRemaining(answer, op.limit, size - op.cost)
      // Nothing was charged. What the store has left shrinks the next take, within the window
      // (or lease period) the answer was read in; an older record starts over from here.
      const fresh = previous === undefined || (policy.endsWithWindow ? now >= previous.windowEndsAt : now - previous.takenAt >= policy.ttlMs)
      if (fresh) this.#record(op, policy, now, 0, answer, op.cost, undefined)
      else previous.storeRemaining = Math.min(previous.storeRemaining, answer.remaining)
      return answer
    }
    if (size === op.cost && previous !== undefined && previous.units > 0 && now < previous.endsAt) {
      // A plain hit that raced a take keeps the lease that take made.
      previous.storeRemaining = Math.min(previous.storeRemaining, answer.remaining)
      return withRemaining(answer, op.limit, previous.units)
    }
    this.#record(op, policy, now, size - op.cost, answer, op.cost, previous)
    return withRemaining(answer, op.limit, size - op.cost)
  }

  /** Stores a new lease for the key. */
  #record (op: EvaluateOp, policy: LeasePolicy, now: number, units: number, answer: Decision, demand: number, previous: Lease | undefined): void {
    const windowEndsAt = policy.endsWithWindow ? now + answer.resetMs : Infinity
    const endsAt = Math.min(now + policy.ttlMs, windowEndsAt)
    const decidedAt = answer.decidedAt
    // Units left in the previous lease (fewer than a request's cost, or a plain hit's record
    // racing it) are given back where exact, so one lease at most is parked per key.
    if (previous !== undefined && previous.units > 0) this.#giveBack(op.key, previous, now).catch(() => {})
    const lease: Lease = {
      policy,
      strategy: op.strategy,
      limit: op.limit,
      windowMs: op.windowMs,
      units,
      size: Math.min(units, largestLease(op, policy)),
      takenAt: now,
      endsAt,
      windowEndsAt,
      decidedAt,
      resetMs: answer.resetMs,
      storeRemaining: answer.remaining,
      demand
    }
    this.#leases.delete(op.key)
    if (this.#leases.size >= policy.maxKeys) this.#evictOldest()
    this.#leases.set(op.key, lease)
  }

  /** A check: a live lease holding the cost answers; otherwise the store, with this process's units added to its remaining. */
  async #check (ops: readonly EvaluateOp[]): Promise<Decision[]> {
    const now = nowOf(ops)
    const local: Array<Lease | undefined> = ops.map((op) => {
      if (op.lease === undefined || op.cost === 0) return undefined
      const lease = this.#current(op, now)
      return lease !== undefined && now < lease.endsAt && lease.units >= op.cost ? lease : undefined
    })
    const storeOps = ops.filter((_, i) => local[i] === undefined).map((op) => storeOp(op, op.cost))
    const answers = storeOps.length === 0 ? [] : await this.#store(storeOps, 'check')
    let j = 0
    return ops.map((op, i) => {
      const lease = local[i]
      if (lease !== undefined) return localDecision(lease, op, now)
      const answer = answers[j++]!
      return op.lease === undefined ? answer : withRemaining(answer, op.limit, this.#liveUnits(op, now))
    })
  }

  /** A refund of a charge made under the key's live lease goes back to that lease; the store takes the others. */
  async #refund (ops: readonly EvaluateOp[]): Promise<Decision[]> {
    const now = nowOf(ops)
    const local: Array<Lease | undefined> = ops.map((op) => {
      if (op.lease === undefined) return undefined
      const lease = this.#current(op, now)
      if (lease === undefined || now >= lease.endsAt) return undefined
      const madeUnder = op.chargedAt === undefined || lease.decidedAt === undefined || op.chargedAt >= lease.decidedAt
      return madeUnder ? lease : undefined
    })
    ops.forEach((op, i) => { if (local[i] !== undefined) local[i]!.units += op.cost })
    const storeOps = ops.filter((_, i) => local[i] === undefined).map((op) => storeOp(op, op.cost))
    const answers = storeOps.length === 0 ? [] : await this.#store(storeOps, 'refund')
    let j = 0
    return ops.map((op, i) => local[i] !== undefined ? localDecision(local[i]!, op, now) : answers[j++]!)
  }

  #liveUnits (op: EvaluateOp, now: number): number {
    const lease = this.#leases.get(op.key)
    return lease === undefined || now >= lease.endsAt || lease.strategy !== op.strategy ? 0 : lease.units
  }

  /**
   * Gives a lease's unused units back to the store when the strategy's refund is exact and the
   * window they were charged in has not ended (a refund after it would give nothing back); the
   * units are gone from here either way. Not awaited: a failure leaves them to lapse.
   */
  #giveBack (key: string, lease: Lease, now: number): Promise<unknown> {
    const units = lease.units
    lease.units = 0
    if (!lease.policy.givesBack || now >= lease.windowEndsAt) return Promise.resolve()
    const op: EvaluateOp = { strategy: lease.strategy, key, limit: lease.limit, windowMs: lease.windowMs, cost: units, ...(lease.decidedAt === undefined ? {} : { chargedAt: lease.decidedAt }) }
    return this.#store([op], 'refund').catch(() => {})
  }

  /** Gives back every lease's unused units (where exact) and waits for the store: `close()`. */
  async giveBackAll (): Promise<void> {
    // Takes in flight (refills) record their units first, so they are given back too.
    await this.idle()
    const pending: Array<Promise<unknown>> = []
    for (const [key, lease] of this.#leases) {
      if (lease.units > 0) pending.push(this.#giveBack(key, lease, lease.policy.now()))
    }
    this.#leases.clear()
    await Promise.all(pending)
  }

  /** Forgets keys whose stored state was deleted or overwritten (their units are gone with it). */
  forget (keys: Iterable<string>): void {
    if (this.#leases.size === 0 && this.#taking.size === 0) return
    for (const key of keys) {
      this.#leases.delete(key)
      this.#taking.delete(key)
    }
  }

  forgetPrefix (prefix: string): void {
    for (const key of this.#leases.keys()) if (key.startsWith(prefix)) this.#leases.delete(key)
    for (const key of this.#taking.keys()) if (key.startsWith(prefix)) this.#taking.delete(key)
  }

  clear (): void {
    this.#leases.clear()
    this.#taking.clear()
  }

  #evictOldest (): void {
    // The oldest record is the key least recently taken for; its unused units lapse.
    const oldest = this.#leases.keys().next()
    if (oldest.done !== true) this.#leases.delete(oldest.value)
  }
}

/**
 * The size of a take: the units this process asked on the key per `ttlMs` over the last lease
 * period (at least the cost, so a cold key is a plain pass-through), capped by `maxUnits`, by
 * `maxShare × limit` and by half of what the store had left at its last answer on the key.
 */
function takeSize (lease: Lease | undefined, op: EvaluateOp, policy: LeasePolicy, now: number): number {
  if (lease === undefined) return op.cost
  const period = now - lease.takenAt
  // Within one millisecond of the take, the rate is at least one per millisecond.
  const wanted = Math.floor(lease.demand * policy.ttlMs / Math.max(1, period))
  let cap = largestLease(op, policy)
  // What the store had left is only known within the window it was read in (and, without
  // windows, for one lease period).
  const known = policy.endsWithWindow ? now < lease.windowEndsAt : period < policy.ttlMs
  if (known) cap = Math.min(cap, Math.floor(lease.storeRemaining / 2))
  return Math.max(op.cost, Math.min(wanted, cap))
}

/** K̂: the most units one lease takes, by `maxUnits` and `maxShare × limit`. */
function largestLease (op: EvaluateOp, policy: LeasePolicy): number {
  return Math.min(policy.maxUnits, shareOfLimit(op, policy))
}

/** `maxShare × limit`, at least 1. */
function shareOfLimit (op: EvaluateOp, policy: LeasePolicy): number {
  return Math.max(1, Math.floor(op.limit * policy.maxShare))
}

/**
 * The units a window take adds for the hits already waiting in this process for the key, which
 * spend them as soon as it lands (so a burst on a hot key waits one round trip, not one per K
 * units): those the units held here do not cover, at most `maxShare × limit`, and no more than the store had left beyond the take itself.
 * Bucket leases add none: their bound counts every unit taken ahead of its use.
 */
function forWaiters (lease: Lease | undefined, op: EvaluateOp, policy: LeasePolicy, now: number, size: number, waiting: number): number {
  if (waiting === 0 || lease === undefined || !policy.endsWithWindow) return 0
  // The units still held here answer the first waiters when they resume.
  const uncovered = waiting - (now < lease.endsAt ? lease.units : 0)
  if (uncovered <= 0) return 0
  let extra = Math.min(uncovered, shareOfLimit(op, policy))
  if (now < lease.windowEndsAt) extra = Math.min(extra, Math.max(0, lease.storeRemaining - size))
  return extra
}

function nowOf (ops: readonly EvaluateOp[]): number {
  for (const op of ops) if (op.lease !== undefined) return op.lease.now()
  return 0
}

/** The op the store is asked: the cost of the take, and no lease (the store decides it as it is). */
function storeOp (op: EvaluateOp, cost: number): EvaluateOp {
  if (op.lease === undefined && cost === op.cost) return op
  const { lease: _lease, ...plain } = op
  return cost === op.cost ? plain : { ...plain, cost }
}

/** An admission by a live lease, reported from its view: the store's remaining at the take plus the units still held here. */
function localDecision (lease: Lease, op: EvaluateOp, now: number): Decision {
  const elapsed = now - lease.takenAt
  const decision: Decision = {
    allowed: true,
    limit: op.limit,
    remaining: Math.min(op.limit, Math.max(0, lease.storeRemaining) + lease.units),
    resetMs: Math.max(1, lease.resetMs - elapsed),
    retryAfterMs: 0
  }
  if (lease.decidedAt !== undefined) decision.decidedAt = lease.decidedAt + elapsed
  return decision
}

function withRemaining (answer: Decision, limit: number, units: number): Decision {
  if (units <= 0) return answer
  return { ...answer, remaining: Math.min(limit, answer.remaining + units) }
}

function giveBackLocal (ops: readonly EvaluateOp[], local: ReadonlyArray<Lease | undefined>): void {
  for (let i = 0; i < ops.length; i++) {
    const lease = local[i]
    if (lease !== undefined) lease.units += ops[i]!.cost
  }
}
