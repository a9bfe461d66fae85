/**
 * The group: the only decider. One limit or many, one pipeline: prepare every limit, evaluate per
 * backend, and on every exit (a rejection, an `onError` answer, an exception) give back exactly
 * the charges made so far; then one outcome holding every decision and every charge still held.
 *
 * Several limits are all-or-nothing: limits on one backend go in one atomic `evaluate` call (which
 * writes nothing unless all are allowed); limits spread over several backends are charged backend
 * by backend and given back when a later one rejects or fails.
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode } from '../../types/backend.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import { blockedDecision, untouchedDecision } from '../decision.js'
import { invalidOption } from '../errors.js'
import { chargeOf, consumed, refundCharges, type Charge } from './charges.js'
import type { ThrottleRequest, ThrottleView } from './contracts.js'
import type { Limit, PreparedLimit } from './limit.js'
import { isPromiseLike } from './maybe-promise.js'

/**
 * What a request's limits decided (`request.rateLimit` in Fastify).
 */
export interface GroupOutcome {
  /** The most restrictive decision: the one the headers report. */
  readonly decision: Decision
  /** The throttle that produced it. */
  readonly throttle: ThrottleView
  /** Its storage key, `<uid>:{<identifier>}`. */
  readonly key: string
  /** Window of the rate that produced the decision (for headers that state the policy). */
  readonly windowMs: number
  /** Every applying limit's decision, in the group's order (exempt, bypassed and disabled ones left out). */
  readonly decisions: readonly Decision[]
  /** The throttle of each entry of `decisions`. */
  readonly throttles: readonly ThrottleView[]
  /** How long the request waits for its turn: the longest `delayMs` among the admitted decisions (queueing strategies); 0 for none. */
  readonly delayMs: number
}

/** An outcome with what the room needs of it: the deciding limit and the charges held. */
export class Outcome implements GroupOutcome {
  readonly decision: Decision
  readonly key: string
  readonly windowMs: number
  readonly delayMs: number
  /** The limit whose decision answers (its headers, its `onThrottled`). */
  readonly limit: Limit
  readonly #decisions: readonly Decision[] | undefined
  readonly #limits: readonly Limit[] | undefined
  readonly #charges: readonly Charge[] | PreparedLimit | undefined

  constructor (
    decision: Decision, chosen: PreparedLimit, decisions: readonly Decision[] | undefined,
    limits: readonly Limit[] | undefined, charges: readonly Charge[] | PreparedLimit | undefined, delayMs: number
  ) {
    this.decision = decision
    this.limit = chosen.limit
    this.key = chosen.op.key
    this.windowMs = chosen.op.windowMs
    this.#decisions = decisions
    this.#limits = limits
    this.#charges = charges
    this.delayMs = delayMs
  }

  get throttle (): ThrottleView {
    return this.limit.view
  }

  get decisions (): readonly Decision[] {
    return this.#decisions ?? [this.decision]
  }

  get throttles (): readonly ThrottleView[] {
    return this.#limits === undefined ? [this.limit.view] : this.#limits.map((l) => l.view)
  }

  /** What this request holds: every charge its admission made (none when it was rejected). */
  get charges (): readonly Charge[] {
    const charges = this.#charges
    if (charges === undefined) return []
    if (Array.isArray(charges)) return charges
    // One limit in 'hit' mode: the charge is worked out only when someone asks (reservations, queues).
    const prepared = charges as PreparedLimit
    return consumed(this.decision) ? [chargeOf(prepared.backend, prepared.op, this.decision)] : []
  }
}

export class LimitGroup {
  readonly limits: readonly Limit[]
  readonly #single: Limit | undefined

  constructor (limits: readonly Limit[]) {
    if (limits.length === 0) invalidOption('rateLimit', 'at least one limit', limits)
    const uids = new Set<string>()
    for (const limit of limits) {
      if (uids.has(limit.uid)) {
        invalidOption('rateLimit', 'limits of one route with distinct uids (one budget cannot be charged twice per request)', limit.uid)
      }
      uids.add(limit.uid)
    }
    this.limits = limits
    this.#single = limits.length === 1 ? limits[0] : undefined
  }

  /** Decides the request. Undefined when every limit is exempt, unlimited or disabled. */
  decide (request: ThrottleRequest, mode: EvaluateMode = 'hit', cost?: number): Outcome | undefined | Promise<Outcome | undefined> {
    if (this.#single !== undefined) return this.#decideOne(this.#single, request, mode, cost)
    return this.#decideMany(request, mode, cost)
  }

  // ---- one limit: plain calls while everything answers synchronously (no closure, no promise) ----

  #decideOne (limit: Limit, request: ThrottleRequest, mode: EvaluateMode, cost: number | undefined): Outcome | undefined | Promise<Outcome | undefined> {
    if (limit.disabled) return undefined
    const prepared = limit.prepare(request, cost)
    if (isPromiseLike<PreparedLimit | undefined>(prepared)) {
      return Promise.resolve(prepared).then((p) => this.#evaluateOne(request, p, mode))
    }
    return this.#evaluateOne(request, prepared, mode)
  }

  #evaluateOne (request: ThrottleRequest, prepared: PreparedLimit | undefined, mode: EvaluateMode): Outcome | undefined | Promise<Outcome> {
    if (prepared === undefined) return undefined
    const decision = prepared.limit.evaluate(request, prepared, mode)
    if (isPromiseLike<Decision>(decision)) {
      return Promise.resolve(decision).then((d) => outcomeOfOne(prepared, d, mode))
    }
    return outcomeOfOne(prepared, decision, mode)
  }

  // ---- several limits ----

  async #decideMany (request: ThrottleRequest, mode: EvaluateMode, cost: number | undefined): Promise<Outcome | undefined> {
    const limits: PreparedLimit[] = []
    for (const limit of this.limits) {
      if (limit.disabled) continue
      const prepared = await limit.prepare(request, cost)
      if (prepared !== undefined) limits.push(prepared)
    }
    if (limits.length === 0) return undefined

    const decisions = new Map<PreparedLimit, Decision>()
    const charges: Charge[] = []
    let rejected = false
    try {
      for (const group of groupByBackend(limits)) {
        const answered = await evaluateOnBackend(request, group, mode)
        group.forEach((limit, i) => decisions.set(limit, answered.decisions[i]!))
        if (mode === 'hit') charges.push(...answered.charges)
        if (!answered.decisions.every((d) => d.allowed)) {
          rejected = true
          break
        }
      }
    } catch (error) {
      // An error policy that raises (or a handler that throws) leaves the request: nothing it charged stays.
      await refundCharges(charges)
      throw error
    }
    if (rejected) {
      await refundCharges(charges)
      charges.length = 0
    }

    const ordered = limits.filter((l) => decisions.has(l))
    const orderedDecisions = ordered.map((l) => decisions.get(l)!)
    const chosen = mostRestrictive(orderedDecisions)
    return new Outcome(orderedDecisions[chosen]!, ordered[chosen]!, orderedDecisions, ordered.map((l) => l.limit), charges, longestDelay(orderedDecisions))
  }
}

function outcomeOfOne (prepared: PreparedLimit, decision: Decision, mode: EvaluateMode): Outcome {
  const charged = mode === 'hit' ? prepared : undefined
  const delayMs = decision.allowed && decision.delayMs !== undefined && decision.delayMs > 0 ? decision.delayMs : 0
  return new Outcome(decision, prepared, undefined, undefined, charged, delayMs)
}

interface Answered {
  readonly decisions: readonly Decision[]
  /** What the call charged and still holds (in `'hit'` mode). */
  readonly charges: readonly Charge[]
}

/**
 * Decides limits that share a backend. The backend's atomic call charges all or none; when it
 * fails, each limit's error policy answers on its own and whatever those answers charged is held.
 */
async function evaluateOnBackend (request: ThrottleRequest, group: readonly PreparedLimit[], mode: EvaluateMode): Promise<Answered> {
  const backend = group[0]!.backend
  const blocked = group.find((l) => l.op.limit === 0)
  if (blocked !== undefined) {
    return { decisions: group.map((l) => l === blocked ? blockedDecision(l.op.windowMs) : untouchedDecision(l.op.limit)), charges: [] }
  }
  let decisions: Decision[]
  if (group[0]!.limit.hasGuardSteps) {
    // Groups with retry/failover steps hold one limit: its answer stands on its own.
    decisions = await group[0]!.limit.evaluateGuarded(request, backend, group, mode)
    return { decisions, charges: individualCharges(group, decisions) }
  }
  try {
    decisions = await backend.evaluate(group.map((l) => l.op), mode)
  } catch (error) {
    const answers: Decision[] = []
    const charges: Charge[] = []
    try {
      for (const limit of group) {
        const answer = await limit.limit.onBackendError(request, error as Error, limit, mode)
        answers.push(answer)
        if (consumed(answer)) charges.push(chargeOf(limit.backend, limit.op, answer))
      }
    } catch (raised) {
      await refundCharges(charges)
      throw raised
    }
    return { decisions: answers, charges }
  }
  const allAllowed = decisions.every((d) => d.allowed)
  return { decisions, charges: allAllowed ? group.map((l, i) => chargeOf(backend, l.op, decisions[i]!)) : [] }
}

function individualCharges (group: readonly PreparedLimit[], decisions: readonly Decision[]): Charge[] {
  const charges: Charge[] = []
  group.forEach((limit, i) => {
    const decision = decisions[i]!
    if (consumed(decision)) charges.push(chargeOf(limit.backend, limit.op, decision))
  })
  return charges
}

/**
 * Limits that can be decided in one call: same backend and plain error policies. A limit with
 * retry/failover steps is decided on its own, so its steps wrap only its own call.
 */
function groupByBackend (limits: readonly PreparedLimit[]): Iterable<PreparedLimit[]> {
  const groups = new Map<ThrottleBackend | Limit, PreparedLimit[]>()
  for (const limit of limits) {
    const key = limit.limit.hasGuardSteps ? limit.limit : limit.backend
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [limit])
    else group.push(limit)
  }
  return groups.values()
}

/**
 * The index of the decision to report: a rejection with the longest wait if any limit rejected,
 * otherwise the limit with the least remaining capacity.
 */
function mostRestrictive (decisions: readonly Decision[]): number {
  let chosen = 0
  let best = decisions[0]!
  for (let i = 1; i < decisions.length; i++) {
    const d = decisions[i]!
    const worse = d.allowed !== best.allowed
      ? !d.allowed
      : d.allowed
        ? d.remaining < best.remaining || (d.remaining === best.remaining && d.resetMs > best.resetMs)
        : waitOf(d) > waitOf(best)
    if (worse) {
      chosen = i
      best = d
    }
  }
  return chosen
}

function waitOf (decision: Decision): number {
  return decision.retryAfterMs < 0 ? Infinity : decision.retryAfterMs
}

/** The longest wait for a turn among admitted decisions: the request goes when every limit lets it. */
function longestDelay (decisions: readonly Decision[]): number {
  let delay = 0
  for (const d of decisions) {
    if (d.allowed && d.delayMs !== undefined && d.delayMs > delay) delay = d.delayMs
  }
  return delay
}
