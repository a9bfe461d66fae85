/**
 * Throttle: one limit (rate + strategy + identifier + cost + error policy + headers), usable with
 * the plugin or on its own. Framework-agnostic: it reads a request-like object (`ip`,
 * `throttleBackend`) and, for its hook, writes to a reply-like object.
 */
import type { Decision } from '../../types/decision.js'
import type { ErrorDecision, IdentifierResult, ThrottleOptions, ThrottledInfo } from '../../types/options.js'
import type { Strategy } from '../../types/strategy.js'
import { activeBackend, type EvaluateMode, type EvaluateOp, ThrottleBackend } from '../backends/throttle-backend.js'
import { InMemoryBackend } from '../backends/in-memory-backend.js'
import { InvalidCostError, InvalidDynamicRateError, InvalidIdentifierError, describeValue } from '../errors.js'
import { compileHeaders, type HeaderWriter, type HeadersOption } from '../headers.js'
import { parseRate, type Rate, type RateInput } from '../rate.js'
import { FixedWindow } from '../strategies/fixed-window.js'
import { boundIdentifier, defaultIdentifier, EXEMPTED } from './identifier.js'
import { blockedDecision, UNLIMITED_DECISION } from '../decision.js'
import { notify, notifyError, observerListener, type DecisionObserver } from './decision-events.js'
import { createEnforcer, type EnforceHook } from './enforce.js'
import { compileOnError, type CompiledOnError, type GuardContext } from './error-handlers.js'
import { LimitGroup } from './limit-group.js'
import { isPromiseLike, then } from './maybe-promise.js'
import { reserveLimits, type Reservation } from './reservation.js'
import { compileRules, type RuleRequest } from './rules.js'
import {
  assertKnownOptions, isValidCost, validateBackendChoice, validateCost, validateFunction,
  validateRate, validateStrategy, validateUid
} from './throttle-options.js'

/** The request fields a throttle reads. A Fastify request fits. */
export interface ThrottleRequest extends RuleRequest {
  ip?: string
  throttleBackend?: ThrottleBackend | null
  log?: { warn(obj: unknown, msg?: string): void, info?(obj: unknown, msg?: string): void }
}


/** One limit of a request, ready for its backend. */
export interface PreparedLimit {
  throttle: Throttle
  backend: ThrottleBackend
  op: EvaluateOp
}

/** Options of `hit`, `check` and `reserve`. */
export interface CostOptions {
  /** Overrides the throttle's cost for this call. */
  cost?: number
}

type RequestFn<T> = (request: ThrottleRequest) => T | PromiseLike<T>

const defaultStrategy = new FixedWindow()

export class Throttle {
  readonly uid: string
  /** Whether the throttle reads the request's backend. */
  readonly dynamicBackend: boolean
  /** Custom rejection, if any. */
  readonly onThrottled: ThrottleOptions['onThrottled']
  /** Writes this throttle's headers; compiled once. */
  readonly writeHeaders: HeaderWriter
  readonly headersOption: HeadersOption

  #rate: Rate | undefined
  #rateFn: RequestFn<RateInput> | undefined
  #strategy: Strategy
  #cost: number
  #costFn: RequestFn<number> | undefined
  #identifier: RequestFn<IdentifierResult> | undefined
  #onError: CompiledOnError
  #gate: ((request: ThrottleRequest) => boolean | Promise<boolean>) | undefined
  #observer: DecisionObserver | undefined
  #group: LimitGroup | undefined
  #backend: ThrottleBackend | undefined
  #fallbackBackend: ThrottleBackend | undefined
  #disabled = false
  #hook: EnforceHook | undefined
  readonly #keyPrefix: string

  constructor (options: ThrottleOptions & { uid: string }) {
    if (options === null || typeof options !== 'object') validateFunction('throttle options (an object)', options)
    assertKnownOptions(options, 'throttle')
    this.uid = validateUid(options.uid)
    this.#keyPrefix = `${this.uid}:{`
    const rate = validateRate(options.rate)
    if (typeof rate === 'function') this.#rateFn = rate as RequestFn<RateInput>
    else this.#rate = rate
    this.#strategy = options.strategy === undefined ? defaultStrategy : validateStrategy(options.strategy)
    const cost = validateCost(options.cost === undefined ? 1 : options.cost)
    if (typeof cost === 'function') {
      this.#costFn = cost as RequestFn<number>
      this.#cost = 1
    } else {
      this.#cost = cost
    }
    if (options.identifier !== undefined) {
      this.#identifier = validateFunction<RequestFn<IdentifierResult>>('identifier', options.identifier)
    }
    this.#onError = compileOnError(options.onError === undefined ? 'throttle' : options.onError)
    this.#gate = compileRules(options.rules)
    // null is a wrong value, not "use the default": only a missing option falls back.
    this.headersOption = options.headers === undefined ? 'legacy' : options.headers
    this.writeHeaders = compileHeaders(this.headersOption)
    validateBackendChoice(options.backend, options.dynamicBackend)
    this.#backend = options.backend
    this.dynamicBackend = options.dynamicBackend ?? false
    if (options.onThrottled !== undefined) validateFunction('onThrottled', options.onThrottled)
    this.onThrottled = options.onThrottled
  }

  // ---- configuration (live: the next request sees it) ----

  /** The static rate, or undefined when the rate is computed per request. */
  get rate (): Rate | undefined {
    return this.#rate
  }

  get strategy (): Strategy {
    return this.#strategy
  }

  get disabled (): boolean {
    return this.#disabled
  }

  /** The pinned backend, if any. */
  get backend (): ThrottleBackend | undefined {
    return this.#backend
  }

  /** Replaces the rate (any form `rate` accepts). Takes effect on the next request. */
  updateRate (rate: ThrottleOptions['rate']): void {
    const parsed = validateRate(rate)
    if (typeof parsed === 'function') {
      this.#rateFn = parsed as RequestFn<RateInput>
      this.#rate = undefined
    } else {
      this.#rate = parsed
      this.#rateFn = undefined
    }
  }

  /** Replaces the strategy. Existing counters of the old strategy are read as far as they are compatible. */
  updateStrategy (strategy: Strategy): void {
    this.#strategy = validateStrategy(strategy)
  }

  /** Replaces the cost (number or function). */
  updateCost (cost: ThrottleOptions['cost']): void {
    const parsed = validateCost(cost)
    if (typeof parsed === 'function') {
      this.#costFn = parsed as RequestFn<number>
      this.#cost = 1
    } else {
      this.#costFn = undefined
      this.#cost = parsed
    }
  }

  /** Stops limiting: requests pass without headers or backend calls until `enable()`. */
  disable (): void {
    this.#disabled = true
  }

  enable (): void {
    this.#disabled = false
  }

  /**
   * Sets the backend used when the throttle has no pinned backend (and, for dynamic throttles,
   * when the request names none). The plugin attaches its default backend here.
   */
  attachBackend (backend: ThrottleBackend): void {
    this.#fallbackBackend = backend
  }

  /** The backend this request's counters live in. */
  backendFor (request: ThrottleRequest): ThrottleBackend {
    if (this.#backend !== undefined) return this.#backend
    if (this.dynamicBackend) {
      const chosen = request.throttleBackend ?? activeBackend.getStore()
      if (chosen != null) return chosen
    }
    this.#fallbackBackend ??= new InMemoryBackend()
    return this.#fallbackBackend
  }

  /**
   * Receives this throttle's decision events (`hit`, `reserve`, its `hook`, and failed backend
   * calls). The plugin attaches its `onDecision` here. Attach before the throttle's hook is first used.
   */
  attachObserver (observer: DecisionObserver | undefined): void {
    if (observer !== undefined && typeof observer !== 'function') validateFunction('onDecision', observer)
    this.#observer = observer
  }

  /** The attached observer, if any. */
  get observer (): DecisionObserver | undefined {
    return this.#observer
  }

  /** The storage key of an identifier: `<uid>:{<identifier>}` (the braces make a Redis Cluster hash tag). */
  keyOf (identifier: string): string {
    return this.#keyPrefix + identifier + '}'
  }

  /**
   * A Fastify hook enforcing this throttle alone: usable as `onRequest` / `preHandler` of any
   * route, including `setNotFoundHandler({ preHandler: throttle.hook }, ...)`.
   */
  get hook (): EnforceHook {
    this.#hook ??= createEnforcer(this.#limitGroup(), observerListener(this.#observer), { exposeOutcome: true })
    return this.#hook
  }

  // ---- public request API ----

  /** Consumes capacity and returns the decision, without touching any reply. */
  async hit (request: ThrottleRequest, options: CostOptions = {}): Promise<Decision> {
    if (this.#observer === undefined) return await this.#run(request, 'hit', options.cost)
    if (this.#disabled) return UNLIMITED_DECISION
    const prepared = await this.prepare(request, options.cost)
    if (prepared === undefined) return UNLIMITED_DECISION
    const decision = await this.evaluate(request, prepared, 'hit')
    if (decision !== UNLIMITED_DECISION) notify(this.#observer, this.uid, prepared.op.key, decision, request)
    return decision
  }

  /**
   * Charges `cost` now and returns a reservation: `commit()` keeps the charge, `refund()` gives
   * the capacity back (through the strategy's refund). A rejected reservation charged nothing;
   * its `commit`/`refund` do nothing. Run the work only when `reservation.decision.allowed`.
   */
  async reserve (request: ThrottleRequest, options: CostOptions = {}): Promise<Reservation> {
    return await reserveLimits(this.#limitGroup(), request, options.cost)
  }

  #limitGroup (): LimitGroup {
    this.#group ??= new LimitGroup([this])
    return this.#group
  }

  /** Answers whether a request of this cost would be allowed, without consuming. */
  async check (request: ThrottleRequest, options: CostOptions = {}): Promise<Decision> {
    return await this.#run(request, 'check', options.cost)
  }

  /** Reports the current state of the request's client without consuming. */
  async stat (request: ThrottleRequest): Promise<Decision> {
    return await this.#run(request, 'check', 0)
  }

  /**
   * Clears counters: those of the request's client when a request is given, otherwise the whole
   * throttle on its backend (the backend must support `clearPrefix`).
   */
  async reset (request?: ThrottleRequest): Promise<void> {
    if (request === undefined) {
      const backends = new Set([this.#backend ?? this.#fallbackBackend].filter((b) => b !== undefined))
      for (const backend of backends) await backend.clearPrefix(this.#keyPrefix)
      return
    }
    // Rules decide whether a request is limited, not whose counters an operator may clear.
    const prepared = await this.#prepareApplied(request, 0)
    if (prepared !== undefined) await prepared.backend.delete(prepared.op.key)
  }

  async #run (request: ThrottleRequest, mode: EvaluateMode, cost: number | undefined): Promise<Decision> {
    if (this.#disabled) return UNLIMITED_DECISION
    const prepared = await this.prepare(request, cost)
    if (prepared === undefined) return UNLIMITED_DECISION
    return await this.evaluate(request, prepared, mode)
  }

  // ---- request path (shared with limit groups and the plugin) ----

  /**
   * Resolves identifier, rate, cost and backend for this request. Undefined when the request is
   * exempt or the rate unlimited. Synchronous when every input is.
   */
  prepare (request: ThrottleRequest, cost?: number): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    if (this.#gate !== undefined) {
      return then(this.#gate(request), (applies) => applies ? this.#prepareApplied(request, cost) : undefined)
    }
    return this.#prepareApplied(request, cost)
  }

  #prepareApplied (request: ThrottleRequest, cost: number | undefined): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    const identifier = this.#identifier === undefined ? defaultIdentifier(request) : this.#identifier(request)
    // No closure on the common synchronous path.
    if (isPromiseLike<IdentifierResult>(identifier)) return Promise.resolve(identifier).then((id) => this.#afterIdentifier(request, id, cost))
    return this.#afterIdentifier(request, identifier, cost)
  }

  #afterIdentifier (request: ThrottleRequest, id: IdentifierResult, cost: number | undefined): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    if (id === EXEMPTED) return undefined
    if (typeof id !== 'string' || id.length === 0) throw new InvalidIdentifierError(this.uid, describeValue(id))
    const key = this.keyOf(boundIdentifier(id))
    if (this.#rate !== undefined) return this.#afterRate(request, key, this.#rate, cost)
    return then(this.#rateFn!(request), (input) => {
      let rate: Rate
      try {
        rate = parseRate(input, `rate of ${this.uid}`)
      } catch (error) {
        throw new InvalidDynamicRateError(this.uid, (error as Error).message)
      }
      return this.#afterRate(request, key, rate, cost)
    })
  }

  #afterRate (request: ThrottleRequest, key: string, rate: Rate, cost: number | undefined): PreparedLimit | undefined | Promise<PreparedLimit | undefined> {
    if (rate.unlimited) return undefined
    if (cost !== undefined) return this.#limit(request, key, rate, checkedCost(this.uid, cost))
    if (this.#costFn === undefined) return this.#limit(request, key, rate, this.#cost)
    return then(this.#costFn(request), (value) => this.#limit(request, key, rate, checkedCost(this.uid, value)))
  }

  #limit (request: ThrottleRequest, key: string, rate: Rate, cost: number): PreparedLimit {
    return {
      throttle: this,
      backend: this.backendFor(request),
      op: { strategy: this.#strategy, key, limit: rate.limit, windowMs: rate.windowMs, cost }
    }
  }

  /**
   * Runs one prepared limit on its backend, applying `onError` to backend failures.
   * Synchronous when the backend is.
   */
  evaluate (request: ThrottleRequest, prepared: PreparedLimit, mode: EvaluateMode): Decision | Promise<Decision> {
    if (prepared.op.limit === 0) return blockedDecision(prepared.op.windowMs)
    if (this.#onError.guard !== undefined) {
      return this.evaluateGuarded(request, prepared.backend, [prepared], mode).then((decisions) => decisions[0]!)
    }
    let result: Decision[] | Promise<Decision[]>
    try {
      result = prepared.backend.evaluate([prepared.op], mode)
    } catch (error) {
      return this.handleBackendError(request, error as Error, prepared, mode)
    }
    if (isPromiseLike<Decision[]>(result)) {
      return result.then((decisions) => decisions[0]!, (error: Error) => this.handleBackendError(request, error, prepared, mode))
    }
    return result[0]!
  }

  /** Whether `onError` wraps backend calls (retry / failover steps). */
  get guarded (): boolean {
    return this.#onError.guard !== undefined
  }

  /**
   * Decides limits of this throttle's error policy on one backend through the `onError` steps
   * (retry, failover with its circuit breaker); an error that gets past them goes to each
   * limit's own terminal policy.
   */
  async evaluateGuarded (request: ThrottleRequest, backend: ThrottleBackend, limits: readonly PreparedLimit[], mode: EvaluateMode): Promise<Decision[]> {
    const ops = limits.map((l) => l.op)
    const call = async (): Promise<Decision[]> => {
      try {
        return await backend.evaluate(ops, mode)
      } catch (error) {
        this.#reportError(request, error as Error, limits)
        throw error
      }
    }
    const context: GuardContext = { request, throttle: this, backend, ops, mode }
    try {
      return await this.#onError.guard!(call, context)
    } catch (error) {
      const answers: Decision[] = []
      for (const limit of limits) answers.push(await limit.throttle.#decideError(request, error as Error, limit, mode))
      return answers
    }
  }

  #reportError (request: ThrottleRequest, error: Error, limits: readonly PreparedLimit[]): void {
    for (const limit of limits) {
      const observer = limit.throttle.#observer
      if (observer !== undefined) notifyError(observer, limit.throttle.uid, limit.op.key, error, request)
    }
  }

  /** Turns a backend failure into a decision according to `onError`. */
  handleBackendError (request: ThrottleRequest, error: Error, prepared: PreparedLimit, mode: EvaluateMode): Decision | Promise<Decision> {
    if (this.#observer !== undefined) notifyError(this.#observer, this.uid, prepared.op.key, error, request)
    return this.#decideError(request, error, prepared, mode)
  }

  #decideError (request: ThrottleRequest, error: Error, prepared: PreparedLimit, mode: EvaluateMode): Decision | Promise<Decision> {
    const onError = this.#onError.terminal
    if (typeof onError !== 'function') return this.#policyDecision(onError, error, prepared)
    const context = {
      backend: prepared.backend,
      evaluate: async (backend: ThrottleBackend = prepared.backend): Promise<Decision> => {
        const decisions = await backend.evaluate([prepared.op], mode)
        return decisions[0]!
      }
    }
    return then(onError(request as never, error, this, context), (answer: ErrorDecision) => {
      if (typeof answer === 'object' && answer !== null) return answer
      return this.#policyDecision(answer, error, prepared)
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
    return {
      decision,
      throttle: this,
      retryAfterSeconds: decision.retryAfterMs < 0 ? -1 : Math.ceil(decision.retryAfterMs / 1000)
    }
  }
}

function checkedCost (uid: string, cost: unknown): number {
  if (!isValidCost(cost)) throw new InvalidCostError(uid, describeValue(cost))
  return cost
}

/**
 * Creates a throttle outside the plugin (jobs, scripts, WebSocket handlers). `uid` is required.
 * Without `backend` it keeps its counters in a private InMemoryBackend.
 */
export function createThrottle (options: ThrottleOptions & { uid: string }): Throttle {
  return new Throttle(options)
}
