/**
 * The group: the only decider. One limit or many, one pipeline: prepare every limit, evaluate per
 * backend, and on every exit (a rejection, an `onError` answer, an exception) give back exactly
 * the charges made so far; then one outcome holding every decision and every charge still held.
 *
 * Several limits are all-or-nothing: limits on one backend go in one atomic `evaluate` call (which
 * writes nothing unless all are allowed); limits spread over several backends are charged backend
 * by backend and given back when a later one rejects or fails.
 *
 * Shadow limits (in `'hit'` mode) are decided after the enforcing ones, and only when those admit
 * the request: a rejected request charges nothing anywhere. Among themselves shadow limits are
 * all-or-nothing too, so each shadow counter holds what it would hold if the shadow limits
 * enforced; a shadow rejection gives back the other shadow charges and never the enforcing ones.
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode } from '../../types/backend.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import { blockedDecision, enforces, overrideOf, untouchedDecision } from '../decision.js'
import { invalidOption } from '../errors.js'
import { chargeOf, consumed, refundCharges, type Charge } from './charges.js'
import type { ThrottleRequest, ThrottleView } from './contracts.js'
import { isErrorAnswer, type Limit, type PreparedLimit } from './limit.js'
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
  /** The limits in shadow mode that would have rejected the request (it went on); usually empty. */
  readonly shadowThrottled: readonly ShadowVerdict[]
}

/** A shadow limit's "would have throttled": its throttle, storage key and (rejecting) decision. */
export interface ShadowVerdict {
  readonly throttle: ThrottleView
  readonly key: string
  readonly decision: Decision
}

const NO_VERDICTS: readonly ShadowVerdict[] = Object.freeze([])

/** An outcome with what the room needs of it: the deciding limit and the charges held. */
export class Outcome implements GroupOutcome {
  readonly decision: Decision
  readonly key: string
  readonly windowMs: number
  readonly delayMs: number
  /** The limit whose decision answers (its headers, its `onThrottled`). */
  readonly limit: Limit
  /** Whether the answering limit decided in shadow mode (its headers are written only when asked). */
  readonly shadow: boolean
  readonly shadowThrottled: readonly ShadowVerdict[]
  readonly #decisions: readonly Decision[] | undefined
  readonly #limits: readonly Limit[] | undefined
  readonly #charges: readonly Charge[] | PreparedLimit | undefined

  constructor (
    decision: Decision, chosen: PreparedLimit, decisions: readonly Decision[] | undefined,
    limits: readonly Limit[] | undefined, charges: readonly Charge[] | PreparedLimit | undefined, delayMs: number,
    shadow = false, shadowThrottled: readonly ShadowVerdict[] = NO_VERDICTS
  ) {
    this.decision = decision
    this.shadow = shadow
    this.shadowThrottled = shadowThrottled
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
    // A shadow limit takes the general path: its failures and rejections never reach the request.
    if (mode === 'hit' && limit.shadow) return this.#decideMany(request, mode, cost)
    const prepared = limit.prepare(request, cost)
    if (isPromiseLike<PreparedLimit | undefined>(prepared)) {
      return Promise.resolve(prepared).then((p) => this.#evaluateOne(request, p, mode))
    }
    return this.#evaluateOne(request, prepared, mode)
  }

  #evaluateOne (request: ThrottleRequest, prepared: PreparedLimit | undefined, mode: EvaluateMode): Outcome | undefined | Promise<Outcome | undefined> {
    if (prepared === undefined) {
      if (mode === 'hit') this.#single!.telemetry?.decided(this.#single!.view, undefined, request, undefined, undefined, 'exempt')
      return undefined
    }
    const decision = prepared.limit.evaluate(request, prepared, mode)
    if (isPromiseLike<Decision>(decision)) {
      return Promise.resolve(decision).then((d) => outcomeOfOne(request, prepared, d, mode))
    }
    return outcomeOfOne(request, prepared, decision, mode)
  }

  // ---- several limits ----

  async #decideMany (request: ThrottleRequest, mode: EvaluateMode, cost: number | undefined): Promise<Outcome | undefined> {
    const enforcing: PreparedLimit[] = []
    const shadows: PreparedLimit[] = []
    for (const limit of this.limits) {
      if (limit.disabled) continue
      const shadow = mode === 'hit' && limit.shadow
      const prepared = shadow ? await prepareShadow(limit, request, cost) : await limit.prepare(request, cost)
      if (prepared === null) continue // a shadow limit that could not decide: reported
      if (prepared !== undefined) (shadow ? shadows : enforcing).push(prepared)
      else if (mode === 'hit') limit.telemetry?.decided(limit.view, undefined, request, undefined, undefined, 'exempt')
    }
    if (enforcing.length === 0 && shadows.length === 0) return undefined

    const decisions = new Map<PreparedLimit, Decision>()
    const charges: Charge[] = []
    const rejected = await decideAllOrNothing(request, enforcing, mode, decisions, charges)
    if (rejected) {
      await refundCharges(charges)
      charges.length = 0
    }
    let verdicts = NO_VERDICTS
    if (!rejected && shadows.length > 0) verdicts = await decideShadows(request, shadows, decisions, charges)

    // Overrides read inside a decision may have turned a limit off (it is exempt, as if disabled)
    // or put it in shadow (decided with the enforcing ones, it must not reject the request).
    const kindOf = (l: PreparedLimit): string | undefined => overrideOf(decisions.get(l)!)?.kind
    const isShadow = (l: PreparedLimit): boolean => shadows.includes(l) || kindOf(l) === 'shadow'
    const ordered = [...enforcing, ...shadows].filter((l) => {
      if (!decisions.has(l)) return false
      const kind = kindOf(l)
      if (kind === 'disabled' && mode === 'hit') l.limit.telemetry?.decided(l.limit.view, undefined, request, undefined, undefined, 'exempt')
      // A rejected request decides no shadow limit (elsewhere they are not even asked).
      return kind !== 'disabled' && !(rejected && kind === 'shadow')
    }).map((l) => effective(l, decisions.get(l)!))
    if (ordered.length === 0) return undefined // only shadow limits, and none could decide
    for (const l of ordered) decisions.set(l, decisions.get(originalOf(l))!)
    if (!rejected) verdicts = [...verdicts, ...overriddenShadowVerdicts(request, ordered.filter((l) => kindOf(l) === 'shadow'), decisions)]
    ordered.sort((a, b) => this.limits.indexOf(a.limit) - this.limits.indexOf(b.limit))
    const orderedDecisions = ordered.map((l) => decisions.get(l)!)
    if (mode === 'hit') ordered.forEach((l, i) => { record(request, l, orderedDecisions[i]!, isShadow(originalOf(l))) })
    // The answer comes from the enforcing limits; shadow limits answer only where none applies.
    const answering = ordered.filter((l) => !isShadow(originalOf(l)))
    const shadowAnswer = answering.length === 0
    const candidates = shadowAnswer ? ordered : answering
    const chosenLimit = candidates[mostRestrictive(candidates.map((l) => decisions.get(l)!))]!
    let decision = decisions.get(chosenLimit)!
    if (shadowAnswer && !decision.allowed) decision = admitted(decision)
    const delayMs = longestDelay(answering.map((l) => decisions.get(l)!))
    return new Outcome(decision, chosenLimit, orderedDecisions, ordered.map((l) => l.limit), charges, delayMs, shadowAnswer, verdicts)
  }
}

/**
 * Decides limits all-or-nothing, backend by backend, recording each decision and what it charged.
 * True when one rejected (what was charged is still in `charges`, for the caller to give back).
 * An error policy that raises (or a handler that throws) leaves the request: nothing it charged stays.
 */
async function decideAllOrNothing (
  request: ThrottleRequest, limits: readonly PreparedLimit[], mode: EvaluateMode,
  decisions: Map<PreparedLimit, Decision>, charges: Charge[]
): Promise<boolean> {
  const mine: Charge[] = []
  try {
    for (const group of groupByBackend(limits)) {
      const answered = await evaluateOnBackend(request, group, mode)
      group.forEach((limit, i) => decisions.set(limit, answered.decisions[i]!))
      if (mode === 'hit') mine.push(...answered.charges)
      if (!answered.decisions.every((d) => d.allowed || !enforces(d))) {
        charges.push(...mine)
        return true
      }
    }
  } catch (error) {
    await refundCharges(mine)
    throw error
  }
  charges.push(...mine)
  return false
}

/**
 * Decides the shadow limits of an admitted request. Their charges join the request's; a shadow
 * rejection gives back only the shadow charges; a failure is reported and the request goes on.
 */
async function decideShadows (
  request: ThrottleRequest, shadows: readonly PreparedLimit[], decisions: Map<PreparedLimit, Decision>, charges: Charge[]
): Promise<readonly ShadowVerdict[]> {
  const shadowCharges: Charge[] = []
  let rejected: boolean
  try {
    rejected = await decideAllOrNothing(request, shadows, 'hit', decisions, shadowCharges)
  } catch (error) {
    // 'raise' (or a throwing handler) on a shadow limit: already given back and reported as an error event.
    for (const limit of shadows) if (!decisions.has(limit)) limit.limit.noteShadowFailure(request, error as Error)
    return NO_VERDICTS
  }
  if (!rejected) {
    charges.push(...shadowCharges)
    return NO_VERDICTS
  }
  await refundCharges(shadowCharges)
  const verdicts: ShadowVerdict[] = []
  for (const limit of shadows) {
    const decision = decisions.get(limit)
    // Rejections an override put in shadow are reported with the others of their kind.
    if (decision === undefined || decision.allowed || !enforces(decision)) continue
    limit.limit.noteShadowThrottled(request, limit.op.key)
    verdicts.push({ throttle: limit.limit.view, key: limit.op.key, decision })
  }
  return verdicts
}

/**
 * Prepares a shadow limit; an identifier, rate or cost function that throws is reported (null),
 * never the request's failure.
 */
async function prepareShadow (limit: Limit, request: ThrottleRequest, cost: number | undefined): Promise<PreparedLimit | undefined | null> {
  try {
    return await limit.prepare(request, cost)
  } catch (error) {
    limit.noteShadowFailure(request, error as Error)
    limit.telemetry?.decided(limit.view, undefined, request, undefined, undefined, 'error')
    return null
  }
}

/** The "would have throttled" of limits an override read inside the decision put in shadow. */
function overriddenShadowVerdicts (request: ThrottleRequest, limits: readonly PreparedLimit[], decisions: ReadonlyMap<PreparedLimit, Decision>): ShadowVerdict[] {
  const verdicts: ShadowVerdict[] = []
  for (const limit of limits) {
    const decision = decisions.get(limit)!
    if (decision.allowed) continue
    limit.limit.noteShadowThrottled(request, limit.op.key)
    verdicts.push({ throttle: limit.limit.view, key: limit.op.key, decision })
  }
  return verdicts
}

const originals = new WeakMap<PreparedLimit, PreparedLimit>()

/**
 * The limit as its decision was made: where an override read inside the decision applied, its
 * op carries the override's limit, window and cost (so headers, refunds and reservations use
 * them) and no longer the lookup (a refund must not apply an override again).
 */
function effective (prepared: PreparedLimit, decision: Decision): PreparedLimit {
  const applied = overrideOf(decision)
  if (applied === undefined) return prepared
  const { overrides: _lookup, ...op } = prepared.op
  const made: PreparedLimit = { limit: prepared.limit, backend: prepared.backend, op: { ...op, limit: applied.limit, windowMs: applied.windowMs, cost: applied.cost } }
  originals.set(made, prepared)
  return made
}

function originalOf (prepared: PreparedLimit): PreparedLimit {
  return originals.get(prepared) ?? prepared
}

/** Counts one limit's decision in its telemetry, if it has any. */
function record (request: ThrottleRequest, prepared: PreparedLimit, decision: Decision, shadow: boolean): void {
  const telemetry = prepared.limit.telemetry
  if (telemetry === undefined) return
  const outcome = isErrorAnswer(decision) ? 'error' : decision.allowed ? 'allowed' : shadow ? 'shadow_throttled' : 'throttled'
  telemetry.decided(prepared.limit.view, prepared.backend, request, prepared.op.key, decision, outcome)
}

/** A shadow rejection as the request saw it: admitted, nothing left, no wait. */
function admitted (decision: Decision): Decision {
  return { ...decision, allowed: true, remaining: 0, retryAfterMs: 0 }
}

function outcomeOfOne (request: ThrottleRequest, prepared: PreparedLimit, decision: Decision, mode: EvaluateMode): Outcome | undefined {
  const applied = overrideOf(decision)
  if (applied !== undefined) return overriddenOutcome(request, prepared, decision, mode, applied.kind)
  return plainOutcome(request, prepared, decision, mode)
}

function plainOutcome (request: ThrottleRequest, prepared: PreparedLimit, decision: Decision, mode: EvaluateMode): Outcome {
  if (mode === 'hit') record(request, prepared, decision, false)
  const charged = mode === 'hit' ? prepared : undefined
  const delayMs = decision.allowed && decision.delayMs !== undefined && decision.delayMs > 0 ? decision.delayMs : 0
  return new Outcome(decision, prepared, undefined, undefined, charged, delayMs)
}

/** One limit's outcome where an override read inside the decision applied: off, in shadow, or another rate. */
function overriddenOutcome (request: ThrottleRequest, prepared: PreparedLimit, decision: Decision, mode: EvaluateMode, kind: 'applied' | 'disabled' | 'shadow'): Outcome | undefined {
  if (kind === 'disabled') {
    if (mode === 'hit') prepared.limit.telemetry?.decided(prepared.limit.view, undefined, request, undefined, undefined, 'exempt')
    return undefined
  }
  const made = effective(prepared, decision)
  if (kind === 'applied') return plainOutcome(request, made, decision, mode)
  record(request, made, decision, true)
  if (decision.allowed) return new Outcome(decision, made, undefined, undefined, made, 0, true)
  prepared.limit.noteShadowThrottled(request, made.op.key)
  const verdicts = [{ throttle: made.limit.view, key: made.op.key, decision }]
  return new Outcome(admitted(decision), made, undefined, undefined, undefined, 0, true, verdicts)
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
  // A limit of 0 is blocked without asking, unless its backend reads overrides that may lift it.
  const blocked = group.find((l) => l.op.limit === 0 && l.op.overrides === undefined)
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
    decisions = await group[0]!.limit.callBackend(backend, group.map((l) => l.op), mode)
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
  // What the atomic call wrote: every enforcing limit's charge when they all allowed, and those of
  // limits an override put in shadow only when these allowed too (limits it turned off: nothing).
  if (!decisions.every((d) => d.allowed || !enforces(d))) return { decisions, charges: [] }
  const shadowsAllowed = decisions.every((d) => d.allowed || overrideOf(d)?.kind !== 'shadow')
  const charges: Charge[] = []
  group.forEach((l, i) => {
    const decision = decisions[i]!
    const kind = overrideOf(decision)?.kind
    if (kind === 'disabled' || (kind === 'shadow' && !shadowsAllowed)) return
    charges.push(chargeOf(backend, effective(l, decision).op, decision))
  })
  return { decisions, charges }
}

function individualCharges (group: readonly PreparedLimit[], decisions: readonly Decision[]): Charge[] {
  const charges: Charge[] = []
  group.forEach((limit, i) => {
    const decision = decisions[i]!
    if (consumed(decision) && overrideOf(decision)?.kind !== 'disabled') charges.push(chargeOf(limit.backend, effective(limit, decision).op, decision))
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
