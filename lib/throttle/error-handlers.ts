/**
 * Backend-failure handling beyond the plain policies: `retry(...)` and `failover(...)`, and the
 * compiler of the `onError` option.
 *
 * `retry` and `failover` are steps that wrap the backend call itself, so they can act BEFORE it:
 * with an open circuit breaker, `failover` sends the request straight to its fallback backend
 * without calling (or waiting on) the failing one. Each is also a plain `onError` handler function
 * (what it does when called after a failure), marked so the throttle recognises the wrapping form.
 *
 * `onError: [retry(...), failover(...), 'allow']` reads in order: retry the primary; if it still
 * fails, fail over; if the fallback fails too, allow. Steps handle what the steps before them
 * could not; the list ends with a policy ('throttle' when it names none) or a handler function.
 */
import type { Decision } from '../../types/decision.js'
import { ThrottleBackend } from '../backends/throttle-backend.js'
import { sleep } from '../clock.js'
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { CircuitBreaker, type BreakerStateChange } from './circuit-breaker.js'
import { GUARD, type GuardContext, type GuardStep, type ThrottleRequest } from './contracts.js'
import type { ErrorContext, ErrorDecision, ErrorHandler, GuardedErrorHandler, OnErrorOption } from './option-types.js'

/** Which errors a step acts on: a predicate, or error classes (`instanceof`). */
export type ErrorMatcher = ((error: Error) => boolean) | ReadonlyArray<abstract new (...args: any[]) => Error>

function compileMatcher (option: string, matcher: unknown): (error: Error) => boolean {
  if (typeof matcher === 'function') {
    const predicate = matcher as (error: Error) => boolean
    return (error) => predicate(error) === true
  }
  if (Array.isArray(matcher) && matcher.length > 0 && matcher.every((c) => typeof c === 'function')) {
    const classes = [...matcher] as Array<abstract new (...args: any[]) => Error>
    return (error) => classes.some((c) => error instanceof c)
  }
  return invalidOption(option, 'a predicate (error) => boolean or a non-empty array of error classes', matcher)
}

function marked (handler: ErrorHandler, step: GuardStep): GuardedErrorHandler {
  Object.defineProperty(handler, GUARD, { value: step })
  return handler as GuardedErrorHandler
}

function isGuarded (value: unknown): value is GuardedErrorHandler {
  return typeof value === 'function' && typeof (value as unknown as Record<symbol, unknown>)[GUARD] === 'function'
}

// ---- retry ----

export interface RetryOptions {
  /**
   * Which errors are retried. Required: a retried `hit` whose first attempt reached the backend
   * (a timeout) may be charged twice, so name only errors where the call surely did not apply
   * (e.g. `(error) => error.cause?.code === 'ECONNREFUSED'`).
   */
  retryOn: ErrorMatcher
  /**
   * Retries after the first attempt.
   * @default 2
   */
  retries?: number
  /**
   * Delay before the first retry, in ms.
   * @default 50
   */
  delayMs?: number
  /**
   * `'fixed'` waits `delayMs` every time; `'exponential'` doubles it on each retry.
   * @default 'exponential'
   */
  backoff?: 'fixed' | 'exponential'
  /**
   * Longest single delay, in ms.
   * @default 1000
   */
  maxDelayMs?: number
  /**
   * Full jitter: each delay is a random value between 0 and the computed delay, so many clients
   * retrying at once spread out.
   * @default false
   */
  jitter?: boolean
}

/** Retries failed backend calls whose error `retryOn` names; other errors pass on at once. */
export function retry (options: RetryOptions): GuardedErrorHandler {
  if (options === null || typeof options !== 'object') invalidOption('retry options', 'an object', options)
  const { retryOn, retries = 2, delayMs = 50, backoff = 'exponential', maxDelayMs = 1000, jitter = false, ...rest } = options
  rejectUnknownKeys('retry', rest, ['retryOn', 'retries', 'delayMs', 'backoff', 'maxDelayMs', 'jitter'], 'retry')
  if (retryOn === undefined) invalidOption('retry.retryOn', 'the errors to retry (required: retrying a call that did apply would charge twice)', retryOn)
  const shouldRetry = compileMatcher('retry.retryOn', retryOn)
  if (!Number.isSafeInteger(retries) || retries < 1 || retries > 10) invalidOption('retry.retries', 'an integer from 1 to 10', retries)
  if (!Number.isFinite(delayMs) || delayMs < 0) invalidOption('retry.delayMs', 'a finite number of ms >= 0', delayMs)
  if (backoff !== 'fixed' && backoff !== 'exponential') invalidOption('retry.backoff', "'fixed' or 'exponential'", backoff)
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) invalidOption('retry.maxDelayMs', 'a finite number of ms >= 0', maxDelayMs)
  if (typeof jitter !== 'boolean') invalidOption('retry.jitter', 'a boolean', jitter)

  const delayOf = (retryIndex: number): number => {
    const base = Math.min(maxDelayMs, backoff === 'fixed' ? delayMs : delayMs * 2 ** retryIndex)
    return jitter ? Math.random() * base : base
  }
  const attempt = async <T>(run: () => Promise<T>): Promise<T> => {
    for (let i = 0; ; i++) {
      try {
        return await run()
      } catch (error) {
        if (i >= retries || !(error instanceof Error) || !shouldRetry(error)) throw error
        await sleep(delayOf(i))
      }
    }
  }
  const step: GuardStep = async (next) => await attempt(next)
  // Called after a failure (plain handler form): the failed call was the first attempt.
  const handler: ErrorHandler = async (_request, error, _throttle, context) => {
    let last = error
    for (let i = 0; i < retries && shouldRetry(last); i++) {
      await sleep(delayOf(i))
      try {
        return await context.evaluate()
      } catch (thrown) {
        if (!(thrown instanceof Error)) throw thrown
        last = thrown
      }
    }
    throw last
  }
  return marked(handler, step)
}

// ---- failover ----

export interface FailoverOptions {
  /** Where decisions go while the primary fails (e.g. a local `new InMemoryBackend()`). */
  backend: ThrottleBackend
  /**
   * Consulted before every primary call: once open, requests go straight to `backend` without
   * touching the primary until its recovery time has passed.
   * @default none (every request tries the primary first)
   */
  breaker?: CircuitBreaker
  /**
   * Which primary errors fail over (and count as breaker failures); others pass on.
   * @default every error of the backend call
   */
  on?: ErrorMatcher
}

/**
 * Sends decisions to a fallback backend when the primary fails, behind an optional circuit
 * breaker. Counts in the fallback start from zero and are not copied back: a client may get up
 * to one extra budget during an outage, never a wrongful rejection from stale state.
 */
export function failover (options: FailoverOptions): GuardedErrorHandler {
  if (options === null || typeof options !== 'object') invalidOption('failover options', 'an object', options)
  const { backend: fallback, breaker, on, ...rest } = options
  rejectUnknownKeys('failover', rest, ['backend', 'breaker', 'on'], 'failover')
  if (!(fallback instanceof ThrottleBackend)) invalidOption('failover.backend', 'a ThrottleBackend instance (the fallback)', fallback)
  if (breaker !== undefined && !(breaker instanceof CircuitBreaker)) invalidOption('failover.breaker', 'a CircuitBreaker', breaker)
  const failsOver = on === undefined ? () => true : compileMatcher('failover.on', on)

  const onFallback = async (context: GuardContext): Promise<Decision[]> => {
    if (!fallback.initialized && !fallback.closed) await fallback.initialize()
    const decisions = await fallback.evaluate(context.ops, context.mode)
    context.answeredBy(decisions, fallback)
    return decisions
  }
  const log = (request: ThrottleRequest, change: BreakerStateChange | undefined): void => {
    if (change === undefined) return
    const message = `fastify-traffik: circuit breaker ${change.from} -> ${change.to} (${change.reason})`
    if (change.to === 'open') request.log?.warn({ breaker: change }, message)
    else if (request.log?.info !== undefined) request.log.info({ breaker: change }, message)
    else request.log?.warn({ breaker: change }, message)
  }

  const step: GuardStep = async (next, context) => {
    if (breaker === undefined) {
      try {
        return await next()
      } catch (error) {
        if (!failsOver(error as Error)) throw error
        return await onFallback(context)
      }
    }
    const { permit, change } = breaker.acquire()
    log(context.request, change)
    if (permit === 0) return await onFallback(context)
    let decisions: Decision[]
    try {
      decisions = await next()
    } catch (error) {
      if (!failsOver(error as Error)) {
        log(context.request, breaker.success(permit)) // not the backend's fault: it answered
        throw error
      }
      log(context.request, breaker.failure(permit))
      return await onFallback(context)
    }
    log(context.request, breaker.success(permit))
    return decisions
  }
  // Called after a failure (plain handler form): the primary was already called.
  const handler: ErrorHandler = async (request, error, _throttle, context) => {
    if (!failsOver(error)) throw error
    if (breaker !== undefined) {
      const { permit, change } = breaker.acquire()
      log(request, change)
      if (permit !== 0) log(request, breaker.failure(permit))
    }
    if (!fallback.initialized && !fallback.closed) await fallback.initialize()
    return await context.evaluate(fallback)
  }
  return marked(handler, step)
}

// ---- the onError option ----

/** `onError` compiled: the steps around the call, and what decides when an error gets past them. */
export interface CompiledOnError {
  /** Wraps a backend call; undefined without retry/failover steps (the call runs bare). */
  readonly guard: ((call: () => Promise<Decision[]>, context: GuardContext) => Promise<Decision[]>) | undefined
  /** Decides for an error that got past the steps. */
  readonly terminal: 'throttle' | 'allow' | 'raise' | ErrorHandler
}

const POLICIES = new Set(['throttle', 'allow', 'raise'])

export function compileOnError (option: unknown): CompiledOnError {
  const list: unknown[] = Array.isArray(option) ? option : [option]
  if (list.length === 0) invalidOption('onError', 'a policy, a handler, or a non-empty list of steps', option)
  const steps: GuardStep[] = []
  let terminal: CompiledOnError['terminal'] = 'throttle'
  list.forEach((item, i) => {
    const last = i === list.length - 1
    if (isGuarded(item)) {
      steps.push(item[GUARD])
      return
    }
    if (typeof item === 'function' || (typeof item === 'string' && POLICIES.has(item))) {
      if (!last) {
        invalidOption(`onError[${i}]`, 'retry(...) or failover(...) here: a policy or a handler function decides, so it can only come last', item)
      }
      terminal = item as CompiledOnError['terminal']
      return
    }
    invalidOption(Array.isArray(option) ? `onError[${i}]` : 'onError', "'throttle', 'allow', 'raise', a handler function, retry(...) or failover(...)", item)
  })
  if (steps.length === 0) return { guard: undefined, terminal }
  const guard = (call: () => Promise<Decision[]>, context: GuardContext): Promise<Decision[]> => {
    let next = call
    for (const step of steps) {
      const inner = next
      next = async () => await step(inner, context)
    }
    return next()
  }
  return { guard, terminal }
}

export type { ErrorContext, ErrorDecision, GuardContext, GuardedErrorHandler, GuardStep, OnErrorOption }
