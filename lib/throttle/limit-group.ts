/**
 * A route's limits, decided together. Several limits are all-or-nothing: limits on one backend go
 * in one atomic `evaluate` call (which writes nothing unless all are allowed); limits spread over
 * several backends are charged backend by backend and refunded when a later one rejects.
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode, ThrottleBackend } from '../backends/throttle-backend.js'
import { invalidOption } from '../errors.js'
import { blockedDecision, untouchedDecision } from '../decision.js'
import { isPromiseLike } from './maybe-promise.js'
import type { PreparedLimit, Throttle, ThrottleRequest } from './throttle.js'

/**
 * The decision that answers the request, and the throttle it came from (for headers and
 * `onThrottled`). The enforcer also stores it on `request.rateLimit`.
 */
export interface GroupOutcome {
  /** The most restrictive decision: the one the headers report. */
  readonly decision: Decision
  /** The throttle that produced it. */
  readonly throttle: Throttle
  /** Its storage key, `<uid>:{<identifier>}`. */
  readonly key: string
  /** Window of the rate that produced the decision (for headers that state the policy). */
  readonly windowMs: number
  /** Every applying limit's decision, in the group's order (exempt, bypassed and disabled ones left out). */
  readonly decisions: readonly Decision[]
  /** The throttle of each entry of `decisions`. */
  readonly throttles: readonly Throttle[]
}

/** Limits charged together. */
export type PreparedLimitList = readonly PreparedLimit[]

/** What a reservation needs: the outcome, and the limits that were charged (empty when rejected). */
export interface ChargedOutcome {
  outcome: GroupOutcome | undefined
  charged: PreparedLimit[]
}

export class LimitGroup {
  readonly throttles: readonly Throttle[]

  constructor (throttles: readonly Throttle[]) {
    if (throttles.length === 0) invalidOption('rateLimit', 'at least one limit', throttles)
    const uids = new Set<string>()
    for (const throttle of throttles) {
      if (uids.has(throttle.uid)) {
        invalidOption('rateLimit', 'limits of one route with distinct uids (one budget cannot be charged twice per request)', throttle.uid)
      }
      uids.add(throttle.uid)
    }
    this.throttles = throttles
  }

  /** Decides the request. Undefined when every limit is exempt, unlimited or disabled. */
  decide (request: ThrottleRequest, mode: EvaluateMode = 'hit', cost?: number): GroupOutcome | undefined | Promise<GroupOutcome | undefined> {
    if (this.throttles.length === 1) return this.#decideOne(this.throttles[0]!, request, mode, cost)
    return this.#decideMany(request, mode, cost)
  }

  #decideOne (throttle: Throttle, request: ThrottleRequest, mode: EvaluateMode, cost: number | undefined): GroupOutcome | undefined | Promise<GroupOutcome | undefined> {
    if (throttle.disabled) return undefined
    // Plain calls while everything answers synchronously: no closure, no promise per request.
    const prepared = throttle.prepare(request, cost)
    if (isPromiseLike<PreparedLimit | undefined>(prepared)) {
      return Promise.resolve(prepared).then((p) => this.#evaluateOne(throttle, request, p, mode))
    }
    return this.#evaluateOne(throttle, request, prepared, mode)
  }

  #evaluateOne (throttle: Throttle, request: ThrottleRequest, prepared: PreparedLimit | undefined, mode: EvaluateMode): GroupOutcome | undefined | Promise<GroupOutcome> {
    if (prepared === undefined) return undefined
    const decision = throttle.evaluate(request, prepared, mode)
    if (isPromiseLike<Decision>(decision)) {
      return Promise.resolve(decision).then((d) => this.#outcomeOf(throttle, prepared, d))
    }
    return this.#outcomeOf(throttle, prepared, decision)
  }

  #outcomeOf (throttle: Throttle, prepared: PreparedLimit, decision: Decision): GroupOutcome {
    return { decision, throttle, key: prepared.op.key, windowMs: prepared.op.windowMs, decisions: [decision], throttles: this.throttles }
  }

  async #decideMany (request: ThrottleRequest, mode: EvaluateMode, cost: number | undefined): Promise<GroupOutcome | undefined> {
    return (await this.decideCharged(request, mode, cost)).outcome
  }

  /**
   * Decides every limit (all-or-nothing) and reports which limits were charged: all of them when
   * the request is allowed in `'hit'` mode, none otherwise. Reservations refund exactly those.
   */
  async decideCharged (request: ThrottleRequest, mode: EvaluateMode = 'hit', cost?: number): Promise<ChargedOutcome> {
    const limits: PreparedLimit[] = []
    for (const throttle of this.throttles) {
      if (throttle.disabled) continue
      const prepared = await throttle.prepare(request, cost)
      if (prepared !== undefined) limits.push(prepared)
    }
    if (limits.length === 0) return { outcome: undefined, charged: [] }

    const decisions = new Map<PreparedLimit, Decision>()
    const charged: PreparedLimit[] = []
    let rejected = false
    for (const group of groupByBackend(limits)) {
      const backend = group[0]!.backend
      const groupDecisions = await this.#evaluateOnBackend(request, backend, group, mode)
      group.forEach((limit, i) => decisions.set(limit, groupDecisions[i]!))
      const allowed = groupDecisions.every((d) => d.allowed)
      if (!allowed) {
        rejected = true
        break
      }
      if (mode === 'hit') charged.push(...group)
    }
    if (rejected && charged.length > 0) await refundCharged(request, charged)

    const ordered = limits.filter((l) => decisions.has(l))
    const chosen = mostRestrictive(ordered, decisions)
    const outcome: GroupOutcome = {
      decision: decisions.get(chosen)!,
      throttle: chosen.throttle,
      key: chosen.op.key,
      windowMs: chosen.op.windowMs,
      decisions: ordered.map((l) => decisions.get(l)!),
      throttles: ordered.map((l) => l.throttle)
    }
    return { outcome, charged: rejected || mode !== 'hit' ? [] : limits }
  }

  async #evaluateOnBackend (request: ThrottleRequest, backend: ThrottleBackend, group: PreparedLimit[], mode: EvaluateMode): Promise<Decision[]> {
    const blocked = group.find((l) => l.op.limit === 0)
    if (blocked !== undefined) {
      return group.map((l) => l === blocked ? blockedDecision(l.op.windowMs) : untouchedDecision(l.op.limit))
    }
    if (group[0]!.throttle.guarded) return await group[0]!.throttle.evaluateGuarded(request, backend, group, mode)
    try {
      return await backend.evaluate(group.map((l) => l.op), mode)
    } catch (error) {
      // Each limit's own error policy answers for it.
      const answers: Decision[] = []
      for (const limit of group) answers.push(await limit.throttle.handleBackendError(request, error as Error, limit, mode))
      return answers
    }
  }
}

/**
 * Limits that can be decided in one call: same backend and plain error policies. A throttle with
 * retry/failover steps is decided on its own, so its steps wrap only its own call.
 */
function groupByBackend (limits: PreparedLimit[]): Iterable<PreparedLimit[]> {
  const groups = new Map<ThrottleBackend | Throttle, PreparedLimit[]>()
  for (const limit of limits) {
    const key = limit.throttle.guarded ? limit.throttle : limit.backend
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [limit])
    else group.push(limit)
  }
  return groups.values()
}

/**
 * Gives the charges back: limits on one backend in one call, and limits with retry/failover steps
 * through their steps (so a refund follows the decision to the fallback while a breaker is open).
 * Resolves whether every refund went through. A refund that fails leaves the charge in place: the
 * client is limited slightly early, never late.
 */
export async function refundCharged (request: ThrottleRequest, limits: readonly PreparedLimit[]): Promise<boolean> {
  const plain = new Map<ThrottleBackend, PreparedLimit[]>()
  let ok = true
  for (const limit of limits) {
    if (limit.throttle.guarded) {
      try {
        await limit.throttle.evaluateGuarded(request, limit.backend, [limit], 'refund')
      } catch {
        ok = false
      }
      continue
    }
    const group = plain.get(limit.backend)
    if (group === undefined) plain.set(limit.backend, [limit])
    else group.push(limit)
  }
  for (const [backend, group] of plain) {
    try {
      await backend.evaluate(group.map((l) => l.op), 'refund')
    } catch {
      ok = false
    }
  }
  return ok
}

/**
 * The decision to report: a rejection with the longest wait if any limit rejected, otherwise the
 * limit with the least remaining capacity.
 */
function mostRestrictive (limits: PreparedLimit[], decisions: Map<PreparedLimit, Decision>): PreparedLimit {
  let chosen = limits[0]!
  let best = decisions.get(chosen)!
  for (let i = 1; i < limits.length; i++) {
    const limit = limits[i]!
    const d = decisions.get(limit)!
    const worse = d.allowed !== best.allowed
      ? !d.allowed
      : d.allowed
        ? d.remaining < best.remaining || (d.remaining === best.remaining && d.resetMs > best.resetMs)
        : (d.retryAfterMs < 0 ? Infinity : d.retryAfterMs) > (best.retryAfterMs < 0 ? Infinity : best.retryAfterMs)
    if (worse) {
      chosen = limit
      best = d
    }
  }
  return chosen
}
