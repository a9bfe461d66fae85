/**
 * The limit core: one limit's configuration, and the two steps of deciding it for a request.
 * `prepare` turns a request into an op (rules → identifier → rate → cost → backend); `evaluate`
 * runs ops on their backend under the limit's error policy. It knows nothing of groups, hooks or
 * the public `Throttle` built on it.
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode, EvaluateOp, OverrideLookup } from '../../types/backend.js'
import type { PeriodPlan, Strategy } from '../../types/strategy.js'
import { activeBackend, type ThrottleBackend } from '../backends/throttle-backend.js'
import { InMemoryBackend } from '../backends/in-memory-backend.js'
import { blockedDecision, retryAfterSeconds, UNLIMITED_DECISION } from '../decision.js'
import { InvalidCostError, InvalidDynamicRateError, InvalidIdentifierError, NoBackendError, describeValue } from '../errors.js'
import { compileHeaders, type HeaderWriter } from '../headers.js'
import { parseRate, type Rate, type RateInput } from '../rate.js'
import { Escalation, type EscalationPolicy } from '../strategies/escalation.js'
import { FixedWindow } from '../strategies/fixed-window.js'
import { recordAnsweredBy, recordMadeByHandler } from './charges.js'
import type { BackendResolver, GuardContext, ShadowSwitch, ThrottleRequest, ThrottleView } from './contracts.js'
import { notifyError, type DecisionObserver } from './decision-events.js'
import { compileOnError, type CompiledOnError } from './error-handlers.js'
import { boundIdentifier, defaultIdentifier, EXEMPTED } from './identifier.js'
import { CompiledLists, type ListVerdict } from './lists.js'
import { isPromiseLike, mapMaybe } from './maybe-promise.js'
import type { BanInfo, ErrorDecision, IdentifierResult, ShadowOptions, ThrottledInfo, ThrottleOptions } from './option-types.js'
import { ShadowLog } from './shadow-log.js'
import type { Telemetry } from './telemetry.js'
import type { LimitOverrides } from './overrides.js'
import { compileAdaptive, type CompiledAdaptive } from './adaptive.js'
import { assertPriorityStrategy, compilePriority, shareOfLimit, type CompiledPriority } from './priority.js'
import { compileRules } from './rules.js'
import { compileLease, leaseFor } from './lease-option.js'
import type { LeasePolicy } from '../../types/backend.js'
import {
  assertKnownOptions, isValidCost, validateBackendChoice, validateCost, validateFunction,
  validateCounting, validateEscalation, validateRate, validateShadow, validateStrategy, validateUid,
  type BanAnswer, type ResponseCounting
} from './throttle-options.js'

/** One limit of a request, ready for its backend. */
export interface PreparedLimit {
  readonly limit: Limit
  readonly backend: ThrottleBackend
  readonly op: EvaluateOp
}

type RequestFn<T> = (request: ThrottleRequest) => T | PromiseLike<T>

const defaultStrategy = new FixedWindow()

export class Limit {
  readonly uid: string
  /** Whether the limit reads the request's backend. */
  readonly dynamicBackend: boolean | 'required'
  /** Custom rejection, if any. */
  readonly onThrottled: ThrottleOptions['onThrottled']
  /** Writes this limit's headers; compiled once. */
  readonly writeHeaders: HeaderWriter
  /** What callbacks receive: this limit's configuration, read-only. */
  readonly view: ThrottleView
  /** How a ban is answered; undefined without an escalation policy. */
  readonly ban: BanAnswer | undefined
  /** Whether an admitted request keeps its charge after the response; undefined: it always does. */
  readonly counting: ResponseCounting | undefined

  #rate: Rate | undefined
  #rateFn: RequestFn<RateInput> | undefined
  #strategy: Strategy
  /** What the backend runs: the strategy, wrapped by the escalation policy when there is one. */
  #decider: Strategy
  readonly #escalation: EscalationPolicy | undefined
  #cost = 1
  #costFn: RequestFn<number> | undefined
  #identifier: RequestFn<IdentifierResult> | undefined
  readonly #onError: CompiledOnError
  readonly #gate: ((request: ThrottleRequest) => boolean | Promise<boolean>) | undefined
  readonly #lists: CompiledLists | undefined
  /** Requests a registry's own allow list exempted (the plugin's `lists`). */
  #registryAllowed: WeakSet<object> | undefined
  #observer: DecisionObserver | undefined
  readonly #backend: ThrottleBackend | undefined
  #fallbackBackend: ThrottleBackend | undefined
  #resolveBackend: BackendResolver | undefined
  #disabled = false
  #shadow = false
  #shadowHeaders = false
  #shadowSwitches: ShadowSwitch[] | undefined
  #shadowLog: ShadowLog | undefined
  #telemetry: Telemetry | undefined
  /** Priority classes sharing this limit's budget; undefined: every request gets the whole limit. */
  readonly #priority: CompiledPriority | undefined
  /** The server's pressure shrinking the limit; undefined: the limit does not depend on load. */
  readonly #adaptive: CompiledAdaptive | undefined
  /** The fleet's overrides of this limit (`fastify.throttle.overrides`); undefined: none. */
  #overrides: LimitOverrides | undefined
  /** Where the fleet's overrides are stored, for a backend that reads them inside the decision. */
  #overrideSource: { backend: ThrottleBackend, free: OverrideLookup, fixed: OverrideLookup } | undefined
  readonly #keyPrefix: string
  /** The `lease` option as given (compiled), and the policy for the current strategy; undefined: off. */
  readonly #leaseOption: Omit<LeasePolicy, 'endsWithWindow' | 'givesBack'> | undefined
  #lease: LeasePolicy | undefined

  constructor (options: ThrottleOptions & { uid: string }) {
    if (options === null || typeof options !== 'object') validateFunction('throttle options (an object)', options)
    assertKnownOptions(options, 'throttle')
    this.uid = validateUid(options.uid)
    this.#keyPrefix = `${this.uid}:{`
    this.setRate(options.rate)
    this.#strategy = options.strategy === undefined ? defaultStrategy : validateStrategy(options.strategy)
    if (options.escalation !== undefined) {
      const { policy, ban } = validateEscalation(options.escalation)
      this.#escalation = policy
      this.ban = ban
    } else {
      this.ban = undefined
    }
    this.#decider = this.#decide(this.#strategy)
    if (options.priority !== undefined) {
      this.#priority = compilePriority(options.priority)
      assertPriorityStrategy(this.uid, this.#strategy, 'priority')
    }
    if (options.adaptive !== undefined && options.adaptive !== false) {
      this.#adaptive = compileAdaptive(options.adaptive)
      assertPriorityStrategy(this.uid, this.#strategy, 'adaptive')
    }
    this.counting = validateCounting(options)
    this.#leaseOption = compileLease(options.lease)
    this.#lease = this.#leaseOf(this.#strategy)
    this.setCost(options.cost === undefined ? 1 : options.cost)
    if (options.identifier !== undefined) {
      this.#identifier = validateFunction<RequestFn<IdentifierResult>>('identifier', options.identifier)
    }
    this.#onError = compileOnError(options.onError === undefined ? 'throttle' : options.onError)
    this.#gate = compileRules(options.rules)
    this.#lists = options.lists === undefined ? undefined : new CompiledLists(options.lists, 'lists', true)
    // null is a wrong value, not "use the default": only a missing option falls back.
    this.writeHeaders = compileHeaders(options.headers === undefined ? 'legacy' : options.headers)
    validateBackendChoice(options.backend, options.dynamicBackend)
    this.#backend = options.backend
    this.dynamicBackend = options.dynamicBackend ?? false
    if (options.onThrottled !== undefined) validateFunction('onThrottled', options.onThrottled)
    this.onThrottled = options.onThrottled
    if (options.shadow !== undefined) this.setShadow(options.shadow)
    const limit = this
    this.view = Object.freeze({
      get uid () { return limit.uid },
      get rate () { return limit.rate },
      get strategy () { return limit.strategy },
      get disabled () { return limit.disabled },
      get shadow () { return limit.shadow },
      get dynamicBackend () { return limit.dynamicBackend },
      get backend () { return limit.backend }
    })
  }

  // ---- configuration (live: the next request sees it) ----

  get rate (): Rate | undefined {
    return this.#rate
  }

  get strategy (): Strategy {
    return this.#strategy
  }

  /** Whether the limit is off: an override's word, else its own (`disable()` / `enable()`). */
  get disabled (): boolean {
    if (this.#overrideSource !== undefined && this.#inScript() !== undefined) return this.#disabled
    return this.#overrides?.throttle?.disabled ?? this.#disabled
  }

  get backend (): ThrottleBackend | undefined {
    return this.#backend
  }

  /** Whether the limit decides in shadow mode: its own setting, or a registry's switch. */
  get shadow (): boolean {
    const own = this.#overrideSource !== undefined && this.#inScript() !== undefined ? this.#shadow : this.#overrides?.throttle?.shadow ?? this.#shadow
    if (own) return true
    const switches = this.#shadowSwitches
    if (switches === undefined) return false
    for (const s of switches) if (s.shadow) return true
    return false
  }

  /** Whether a shadow decision still writes this limit's headers. */
  get shadowHeaders (): boolean {
    return this.#shadowHeaders
  }

  get observer (): DecisionObserver | undefined {
    return this.#observer
  }

  /** Whether `onError` wraps backend calls (retry / failover steps). */
  get hasGuardSteps (): boolean {
    return this.#onError.guard !== undefined
  }

  setRate (rate: ThrottleOptions['rate']): void {
    const parsed = validateRate(rate)
    if (typeof parsed === 'function') {
      this.#rateFn = parsed as RequestFn<RateInput>
      this.#rate = undefined
    } else {
      this.#rate = parsed
      this.#rateFn = undefined
    }
  }

  setStrategy (strategy: Strategy): void {
    const valid = validateStrategy(strategy)
    if (this.#priority !== undefined) assertPriorityStrategy(this.uid, valid, 'priority')
    if (this.#adaptive !== undefined) assertPriorityStrategy(this.uid, valid, 'adaptive')
    const lease = this.#leaseOf(valid)
    this.#decider = this.#decide(valid)
    this.#lease = lease
    this.#strategy = valid
  }

  /** The lease policy for `strategy`, when the throttle leases; a strategy that cannot lease is refused. */
  #leaseOf (strategy: Strategy): LeasePolicy | undefined {
    if (this.#leaseOption === undefined) return undefined
    const conflicting = this.#escalation !== undefined ? 'escalation' : this.#priority !== undefined ? 'priority' : this.#adaptive !== undefined ? 'adaptive' : undefined
    return leaseFor(this.uid, this.#leaseOption, strategy, conflicting)
  }

  /** The strategy the backend runs for `strategy`: wrapped by the escalation policy, if any. */
  #decide (strategy: Strategy): Strategy {
    return this.#escalation === undefined ? strategy : new Escalation(strategy, this.#escalation)
  }

  setCost (cost: ThrottleOptions['cost']): void {
    const parsed = validateCost(cost)
    if (typeof parsed === 'function') {
      this.#costFn = parsed as RequestFn<number>
      this.#cost = 1
    } else {
      this.#costFn = undefined
      this.#cost = parsed
    }
  }

  setDisabled (disabled: boolean): void {
    this.#disabled = disabled
  }

  setShadow (shadow: boolean | ShadowOptions): void {
    const { on, headers } = validateShadow(shadow)
    this.#shadow = on
    this.#shadowHeaders = headers
  }

  /** Replaces the fleet's overrides of this limit; the next request reads them. */
  setOverrides (overrides: LimitOverrides | undefined): void {
    this.#overrides = overrides
  }

  /**
   * Where the fleet's overrides are stored (`fieldsKey` in `backend`). When this limit decides on
   * that backend and the backend reads overrides inside its decision (Redis on one node), its ops
   * carry the lookup and the backend applies what is stored at that moment; the overrides read
   * every `refreshMs` (setOverrides) then stay out of its decisions.
   */
  setOverrideSource (backend: ThrottleBackend | undefined, fieldsKey = '', fields = { throttle: '', identifierPrefix: '' }): void {
    this.#overrideSource = backend === undefined
      ? undefined
      : {
          backend,
          free: Object.freeze({ key: fieldsKey, throttleField: fields.throttle, identifierPrefix: fields.identifierPrefix, fixedCost: false }),
          fixed: Object.freeze({ key: fieldsKey, throttleField: fields.throttle, identifierPrefix: fields.identifierPrefix, fixedCost: true })
        }
  }

  /**
   * The lookup of the fleet's overrides for this limit's ops when its backend reads them inside
   * the decision; undefined otherwise. Only a limit whose backend is fixed (not chosen per
   * request), whose strategy runs as a script, and whose limit is the rate's own (no priority
   * classes, adaptive limit or calendar periods, which the script cannot recompute) qualifies.
   */
  #inScript (): { free: OverrideLookup, fixed: OverrideLookup } | undefined {
    const source = this.#overrideSource
    if (source === undefined || this.dynamicBackend !== false || this.#priority !== undefined || this.#adaptive !== undefined) return undefined
    const decider = this.#decider
    if (decider.periods !== undefined || typeof decider.lua !== 'string' || decider.lua.length === 0) return undefined
    const backend = this.#backend ?? this.#fallbackBackend
    if (backend !== source.backend || !backend.overridesInScript) return undefined
    return source
  }

  /** Follows a registry's shadow switch too (each registry that adopts the limit adds its own). */
  addShadowSwitch (shadowSwitch: ShadowSwitch): void {
    this.#shadowSwitches ??= []
    if (!this.#shadowSwitches.includes(shadowSwitch)) this.#shadowSwitches.push(shadowSwitch)
  }

  /**
   * Records that this limit, in shadow, would have rejected a request: a `'shadow-throttled'`
   * event is the observer's business; the log gets one line now and then (see ShadowLog).
   */
  noteShadowThrottled (request: ThrottleRequest, key: string): void {
    this.#shadowLog ??= new ShadowLog(this.uid)
    this.#shadowLog.note(request, key)
  }

  /** A shadow limit whose identifier, rate or cost function threw: reported, and the request goes on. */
  noteShadowFailure (request: ThrottleRequest, error: Error): void {
    request.log?.warn({ err: error, uid: this.uid }, 'fastify-traffik: a shadow throttle could not decide a request; it went on')
  }

  /** The backend used when none is pinned (and, for dynamic limits, when the request names none). */
  setFallbackBackend (backend: ThrottleBackend): void {
    this.#fallbackBackend = backend
  }

  /** Exempts the requests a registry's allow list admitted (each registry that adopts the limit passes its set). */
  setRegistryAllowed (allowed: WeakSet<object>): void {
    this.#registryAllowed = allowed
  }

  get telemetry (): Telemetry | undefined {
    return this.#telemetry
  }

  setTelemetry (telemetry: Telemetry | undefined): void {
    this.#telemetry = telemetry
  }

  /** Calls the backend, inside a span and timed when telemetry is on. */
  callBackend (backend: ThrottleBackend, ops: readonly EvaluateOp[], mode: EvaluateMode): Decision[] | Promise<Decision[]> {
    const telemetry = this.#telemetry
    if (telemetry === undefined) return backend.evaluate(ops, mode)
    return telemetry.call(this.view, backend, ops, mode, () => backend.evaluate(ops, mode))
  }

  setObserver (observer: DecisionObserver | undefined): void {
    if (observer !== undefined && typeof observer !== 'function') validateFunction('onDecision', observer)
    this.#observer = observer
  }

  /**
   * How a dynamic limit learns a request's backend when nothing set `request.throttleBackend`
   * yet: the plugin's `resolveBackend`, run when the limit runs (so after the authentication
   * hooks that precede it). The resolver stores its answer on the request.
   */
  setBackendResolver (resolver: BackendResolver | undefined): void {
    this.#resolveBackend = resolver
  }

  /** Whether clients are told apart by `request.ip` (the default identifier). */
  get identifiesByIp (): boolean {
    return this.#identifier === undefined
  }

  /** The backend this request's counters live in, as far as it is known without resolving it. */
  backendFor (request: ThrottleRequest): ThrottleBackend {
    if (this.#backend !== undefined) return this.#backend
    if (this.dynamicBackend !== false) {
      const chosen = request.throttleBackend ?? activeBackend.getStore()
      if (chosen != null) return chosen
    }
    return this.#fallback()
  }

  /** The backend of this request, asking the plugin's resolver when a dynamic limit needs it. */
  #chooseBackend (request: ThrottleRequest): ThrottleBackend | Promise<ThrottleBackend> {
    if (this.#backend !== undefined) return this.#backend
    if (this.dynamicBackend === false) return this.#fallback()
    const chosen = request.throttleBackend ?? activeBackend.getStore()
    if (chosen != null || this.#resolveBackend === undefined) return this.#orFallback(chosen)
    return mapMaybe(this.#resolveBackend(request), (resolved) => this.#orFallback(resolved))
  }

  #orFallback (chosen: ThrottleBackend | null | undefined): ThrottleBackend {
    if (chosen != null) return chosen
    if (this.dynamicBackend === 'required') throw new NoBackendError(this.uid)
    return this.#fallback()
  }

  #fallback (): ThrottleBackend {
    this.#fallbackBackend ??= new InMemoryBackend()
    return this.#fallbackBackend
  }

  /** The backend `reset()` clears, when it is known without a request. */
  get resettableBackend (): ThrottleBackend | undefined {
    return this.#backend ?? this.#fallbackBackend
  }

  /** The storage key of an identifier: `<uid>:{<identifier>}` (the braces make a Redis Cluster hash tag). */
  keyOf (identifier: string): string {
    return this.#keyPrefix + identifier + '}'
  }

  get keyPrefix (): string {
    return this.#keyPrefix
  }

  // ---- prepare: request → op ----

  /**
   * Resolves identifier, rate, cost and backend for this request. Undefined when the request is
   * exempt (rules, EXEMPTED) or the rate unlimited. Synchronous when every input is.
   * `applyRules: false` skips the rules (an operator's reset clears a client whatever the rules say).
   */
  prepare (request: ThrottleRequest, cost?: number, applyRules = true): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    if (!applyRules) return this.#identify(request, cost, false)
    if (this.#registryAllowed?.has(request) === true) return undefined
    if (this.#gate !== undefined) {
      return mapMaybe(this.#gate(request), (applies) => applies ? this.#listed(request, cost) : undefined)
    }
    return this.#listed(request, cost)
  }

  /** Lists matched on the address (or a value function) run before the identifier. */
  #listed (request: ThrottleRequest, cost: number | undefined): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    const lists = this.#lists
    if (lists === undefined || lists.byIdentifier) return this.#identify(request, cost)
    return mapMaybe(lists.verdict(request as never, lists.valueOf(request as never)), (verdict) =>
      this.#afterVerdict(verdict) ? this.#identify(request, cost) : undefined)
  }

  /** Whether limiting goes on after a list verdict; a refusal throws (nothing was charged yet). */
  #afterVerdict (verdict: ListVerdict): boolean {
    if (verdict === 'deny') throw this.#lists!.refusal()
    return verdict !== 'allow'
  }

  #identify (request: ThrottleRequest, cost: number | undefined, applyLists = true): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    const identifier = this.#identifier === undefined ? defaultIdentifier(request) : this.#identifier(request)
    // No closure on the common synchronous path.
    if (isPromiseLike<IdentifierResult>(identifier)) return Promise.resolve(identifier).then((id) => this.#afterIdentifier(request, id, cost, applyLists))
    return this.#afterIdentifier(request, identifier, cost, applyLists)
  }

  #afterIdentifier (request: ThrottleRequest, id: IdentifierResult, cost: number | undefined, applyLists = true): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    if (id === EXEMPTED) return undefined
    if (typeof id !== 'string' || id.length === 0) throw new InvalidIdentifierError(this.uid, describeValue(id))
    if (this.#lists?.byIdentifier === true && applyLists) {
      return mapMaybe(this.#lists.verdict(request as never, id), (verdict) =>
        this.#afterVerdict(verdict) ? this.#afterIdentifier(request, id, cost, false) : undefined)
    }
    const key = this.keyOf(boundIdentifier(id))
    const inScript = this.#overrideSource === undefined ? undefined : this.#inScript()
    if (inScript !== undefined) {
      // The backend applies the overrides stored now; the op carries the throttle's own values.
      const lookup = cost === undefined ? inScript.free : inScript.fixed
      if (this.#rate !== undefined) return this.#afterRate(request, key, this.#rate, cost, lookup)
      return mapMaybe(this.#rateFn!(request), (input) => this.#afterRate(request, key, this.#dynamicRate(input), cost, lookup))
    }
    const overrides = this.#overrides
    if (overrides !== undefined) {
      const own = overrides.identifiers.size === 0 ? undefined : overrides.identifiers.get(id)
      if (own?.disabled === true) return undefined
      const rate = own?.rate ?? overrides.throttle?.rate
      cost ??= own?.cost ?? overrides.throttle?.cost
      if (rate !== undefined) return this.#afterRate(request, key, rate, cost)
    }
    if (this.#rate !== undefined) return this.#afterRate(request, key, this.#rate, cost)
    return mapMaybe(this.#rateFn!(request), (input) => this.#afterRate(request, key, this.#dynamicRate(input), cost))
  }

  #dynamicRate (input: RateInput): Rate {
    try {
      return parseRate(input, `rate of ${this.uid}`)
    } catch (error) {
      throw new InvalidDynamicRateError(this.uid, (error as Error).message)
    }
  }

  #afterRate (request: ThrottleRequest, key: string, rate: Rate, cost: number | undefined, lookup?: OverrideLookup): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    if (rate.unlimited) return undefined
    if (cost !== undefined) return this.#prepared(request, key, rate, checkedCost(this.uid, cost), lookup)
    if (this.#costFn === undefined) return this.#prepared(request, key, rate, this.#cost, lookup)
    return mapMaybe(this.#costFn(request), (value) => this.#prepared(request, key, rate, checkedCost(this.uid, value), lookup))
  }

  #prepared (request: ThrottleRequest, key: string, rate: Rate, cost: number, lookup?: OverrideLookup): PreparedLimit | Promise<PreparedLimit> {
    if (lookup !== undefined) {
      // Only a limit with a fixed backend reads overrides in its decision: no resolver to ask.
      return { limit: this, backend: this.#backend ?? this.#fallback(), op: { strategy: this.#decider, key, limit: rate.limit, windowMs: rate.windowMs, cost, overrides: lookup } }
    }
    const adaptive = this.#adaptive
    if (this.#priority === undefined) {
      return this.#withBackend(request, key, adaptive === undefined ? rate.limit : adaptive.limitFor(rate.limit, 1), rate.windowMs, cost)
    }
    return mapMaybe(this.#priority.shareOf(request as never), (share) =>
      this.#withBackend(request, key, adaptive === undefined ? shareOfLimit(rate.limit, share) : adaptive.limitFor(rate.limit, share), rate.windowMs, cost))
  }

  #withBackend (request: ThrottleRequest, key: string, limit: number, windowMs: number, cost: number): PreparedLimit | Promise<PreparedLimit> {
    if (this.#decider.periods !== undefined) return this.#preparedInPeriods(request, key, limit, windowMs, cost, this.#decider.periods)
    const lease = this.#lease
    const op: EvaluateOp = lease === undefined ? { strategy: this.#decider, key, limit, windowMs, cost } : { strategy: this.#decider, key, limit, windowMs, cost, lease }
    const backend = this.#chooseBackend(request)
    if (isPromiseLike<ThrottleBackend>(backend)) return backend.then((chosen) => ({ limit: this, backend: chosen, op }))
    return { limit: this, backend, op }
  }

  /** A calendar strategy's op also carries the period bounds of the request's cycle, at its backend's time. */
  #preparedInPeriods (request: ThrottleRequest, key: string, limit: number, windowMs: number, cost: number, periods: PeriodPlan): PreparedLimit | Promise<PreparedLimit> {
    const anchor = periods.anchorOf === undefined ? undefined : periods.anchorOf(request)
    return mapMaybe(anchor, (resolved) => mapMaybe(this.#chooseBackend(request), (backend) => {
      const bounds = periods.bounds(backend.currentTime(), resolved)
      return { limit: this, backend, op: { strategy: this.#decider, key, limit, windowMs, cost, bounds } }
    }))
  }

  // ---- evaluate: op → decision, under the error policy ----

  /**
   * Runs one prepared limit on its backend, `onError` answering for backend failures.
   * Synchronous when the backend is.
   */
  evaluate (request: ThrottleRequest, prepared: PreparedLimit, mode: EvaluateMode): Decision | Promise<Decision> {
    // With overrides read in the decision, the backend decides a limit of 0 (an override may lift it).
    if (prepared.op.limit === 0 && prepared.op.overrides === undefined) return blockedDecision(prepared.op.windowMs)
    if (this.#onError.guard !== undefined) {
      return this.evaluateGuarded(request, prepared.backend, [prepared], mode).then((decisions) => decisions[0]!)
    }
    let result: Decision[] | Promise<Decision[]>
    try {
      result = this.callBackend(prepared.backend, [prepared.op], mode)
    } catch (error) {
      return this.onBackendError(request, error as Error, prepared, mode)
    }
    if (isPromiseLike<Decision[]>(result)) {
      return result.then((decisions) => decisions[0]!, (error: Error) => this.onBackendError(request, error, prepared, mode))
    }
    return result[0]!
  }

  /**
   * Decides limits sharing this limit's error policy on one backend through the `onError` steps
   * (retry, failover with its circuit breaker); an error that gets past them goes to each limit's
   * own terminal policy.
   */
  async evaluateGuarded (request: ThrottleRequest, backend: ThrottleBackend, limits: readonly PreparedLimit[], mode: EvaluateMode): Promise<Decision[]> {
    const ops = limits.map((l) => l.op)
    const call = async (): Promise<Decision[]> => {
      try {
        return await this.callBackend(backend, ops, mode)
      } catch (error) {
        for (const limit of limits) limit.limit.#reportError(request, error as Error, limit)
        throw error
      }
    }
    const context: GuardContext = { request, throttle: this.view, backend, ops, mode, answeredBy: recordAnsweredBy }
    try {
      return await this.#onError.guard!(call, context)
    } catch (error) {
      const answers: Decision[] = []
      for (const limit of limits) answers.push(await limit.limit.#decideError(request, error as Error, limit, mode))
      return answers
    }
  }

  /** Reports a failed backend call, then lets `onError` answer for it. */
  onBackendError (request: ThrottleRequest, error: Error, prepared: PreparedLimit, mode: EvaluateMode): Decision | Promise<Decision> {
    this.#reportError(request, error, prepared)
    return this.#decideError(request, error, prepared, mode)
  }

  #reportError (request: ThrottleRequest, error: Error, prepared: PreparedLimit): void {
    if (this.#observer !== undefined) notifyError(this.#observer, this.uid, prepared.op.key, error, request)
    this.#telemetry?.backendFailed(this.view, prepared.backend, request, prepared.op.key, error)
  }

  #decideError (request: ThrottleRequest, error: Error, prepared: PreparedLimit, mode: EvaluateMode): Decision | Promise<Decision> {
    const onError = this.#onError.terminal
    if (typeof onError !== 'function') return errorAnswer(this.#policyDecision(onError, error, prepared))
    let evaluated: Decision | undefined
    const context = {
      backend: prepared.backend,
      evaluate: async (backend: ThrottleBackend = prepared.backend): Promise<Decision> => {
        const decisions = await this.callBackend(backend, [prepared.op], mode)
        if (backend !== prepared.backend) recordAnsweredBy(decisions, backend)
        evaluated = decisions[0]!
        return evaluated
      }
    }
    return mapMaybe(onError(request as never, error, this.view, context), (answer: ErrorDecision) => {
      if (typeof answer !== 'object' || answer === null) return errorAnswer(this.#policyDecision(answer, error, prepared))
      // A decision the handler built itself charged nothing: it must never be refunded.
      if (answer !== evaluated) recordMadeByHandler(answer)
      return errorAnswer(answer)
    })
  }

  #policyDecision (policy: 'throttle' | 'allow' | 'raise', error: Error, prepared: PreparedLimit): Decision {
    if (policy === 'raise') throw error
    if (policy === 'allow') return UNLIMITED_DECISION
    // Fail closed: a short, honest wait; the backend may be back by then.
    return { allowed: false, limit: prepared.op.limit, remaining: 0, resetMs: 1000, retryAfterMs: 1000 }
  }

  /** Builds what `onThrottled` receives. */
  throttledInfo (decision: Decision): ThrottledInfo {
    return { decision, throttle: this.view, retryAfterSeconds: retryAfterSeconds(decision) }
  }

  banInfo (decision: Decision): BanInfo {
    return { decision, throttle: this.view, retryAfterSeconds: retryAfterSeconds(decision) }
  }
}

/** Decisions the error policy gave for a failed backend call (metrics count them as errors). */
const errorAnswers = new WeakSet<Decision>()

function errorAnswer (decision: Decision): Decision {
  // The shared fail-open decision is recognised by identity; it is frozen and shared, never marked.
  if (decision !== UNLIMITED_DECISION) errorAnswers.add(decision)
  return decision
}

/**
 * Whether a prepared limit's decision is the error policy's answer to a failed backend call
 * (fail-open answers are the shared unlimited decision: a prepared limit gets it no other way).
 */
export function isErrorAnswer (decision: Decision): boolean {
  return decision === UNLIMITED_DECISION || errorAnswers.has(decision)
}

function checkedCost (uid: string, cost: unknown): number {
  if (!isValidCost(cost)) throw new InvalidCostError(uid, describeValue(cost))
  return cost
}
