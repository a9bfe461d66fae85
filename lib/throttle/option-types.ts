/**
 * Public option types of a throttle and of the callbacks it calls. Every option says its default;
 * `throttle-options.ts` validates them.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Decision } from '../../types/decision.js'
import type { Strategy } from '../../types/strategy.js'
import type { EscalationPolicy } from '../strategies/escalation.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import type { HeadersOption } from '../headers.js'
import type { RateInput } from '../rate.js'
import type { GUARD, GuardStep, ThrottleView } from './contracts.js'
import type { EXEMPTED } from './identifier.js'
import type { ListsOptions } from './lists.js'
import type { Rule } from './rules.js'

/** A value or a promise of it: every user function may be sync or async. */
export type MaybePromise<T> = T | Promise<T>

/** What an identifier returns: the client's key, or EXEMPTED to skip limiting. */
export type IdentifierResult = string | typeof EXEMPTED

/** What an `onError` handler may answer for a failed backend call. */
export type ErrorDecision = 'allow' | 'throttle' | 'raise' | Decision

/** Context given to an `onError` handler. */
export interface ErrorContext {
  /** Re-runs the same decision on `backend` (default: the backend that failed). */
  evaluate(backend?: ThrottleBackend): Promise<Decision>
  /** The backend whose call failed. */
  backend: ThrottleBackend
}

/** A handler deciding what a backend failure means for this request. */
export type ErrorHandler = (
  request: FastifyRequest,
  error: Error,
  throttle: ThrottleView,
  context: ErrorContext
) => MaybePromise<ErrorDecision>

/** An `onError` handler that can also wrap the backend call (what `retry` and `failover` return). */
export interface GuardedErrorHandler extends ErrorHandler {
  readonly [GUARD]: GuardStep
}

/** The plain failure policies. */
export type ErrorPolicy = 'throttle' | 'allow' | 'raise'

/**
 * Failure policy: fail closed, fail open, surface the error, decide in a handler, or a list of
 * steps such as `[retry({...}), failover({...}), 'allow']` (each step handles what the steps
 * before it could not; the list ends with a policy or a handler, `'throttle'` when it names none).
 */
export type OnErrorOption =
  | ErrorPolicy
  | ErrorHandler
  | ReadonlyArray<GuardedErrorHandler | ErrorHandler | ErrorPolicy>

/** What `onDecision` receives: one event per decided request (and one per failed backend call). */
export interface DecisionEvent {
  /**
   * `'allowed'` / `'throttled'`: the answer of a request's limits (the deciding limit's uid and key);
   * `'shadow-throttled'`: a limit in shadow mode would have rejected the request, which went on
   * (one such event per shadow limit, after the request's answer);
   * `'error'`: a backend call failed (before `onError` answered; the answer follows as its own event).
   */
  type: 'allowed' | 'throttled' | 'shadow-throttled' | 'error'
  /** The uid of the deciding throttle (of the shadow limit, for `'shadow-throttled'`). */
  uid: string
  /** The storage key, `<uid>:{<identifier>}`. */
  key: string
  /** The decision; undefined for `'error'`. */
  decision: Decision | undefined
  /** The backend error, for `'error'`. */
  error: Error | undefined
  request: FastifyRequest
}

/** What `onThrottled` receives about the rejection. */
export interface ThrottledInfo {
  /** The most restrictive rejecting decision. */
  decision: Decision
  /** The throttle that rejected. */
  throttle: ThrottleView
  /** Whole seconds to wait (rounded up); -1 when the cost can never fit. */
  retryAfterSeconds: number
}

/** What `onBanReach` and a ban `body` function receive. */
export interface BanInfo {
  /** The rejecting decision; `decision.escalation` holds the offence record. */
  decision: Decision
  /** The throttle whose escalation policy banned the client. */
  throttle: ThrottleView
  /** Whole seconds until the ban ends (rounded up). */
  retryAfterSeconds: number
}

/** The ban tier of an escalation policy. */
export interface BanOptions {
  /** Offences within the period that make the block a ban (an integer >= 1). Required. */
  after: number
  /**
   * How long a ban lasts, in ms; the offence's own block when that is longer.
   * @default the policy's `periodMs` (with `periodMs: 'block'`: the offence's block)
   */
  durationMs?: number
  /**
   * The status of the answer while banned (an integer from 400 to 599).
   * @default 403
   */
  statusCode?: number
  /**
   * The body sent while banned, or a function of the request returning it. Without one, the coded
   * error `TRAFFIK_ERR_BANNED` goes to Fastify's error handling with `statusCode`.
   * @default none (the coded error)
   */
  body?: unknown
}

/**
 * Escalation policy of a throttle (see docs/escalation.md): blocks that grow per offence (an
 * offence is a rejection by this throttle's limit outside a block), a ban tier, and
 * `continueExceeding`. The offence record lives beside the limit's state and is decided in the
 * same atomic operation on every backend.
 */
export interface EscalationOptions extends EscalationPolicy {
  ban?: BanOptions
  /**
   * Called once per ban, on the offence that starts it (not for the requests answered while it
   * lasts; with `offendWhileBlocked` each of those is an offence that renews the ban, and calls
   * it again), before the answer is sent. Sync; an error it throws fails that request.
   * @default none
   */
  onBanReach?: (request: FastifyRequest, info: BanInfo) => void
}

/** Shadow mode with options (`shadow: true` is `{ headers: false }`). */
export interface ShadowOptions {
  /**
   * Write the shadow limit's rate-limit headers (remaining 0 and no `retry-after` when it would
   * have throttled: the request is admitted).
   * @default false
   */
  headers?: boolean
}

/** Options of one throttle (one limit). */
export interface ThrottleOptions {
  /**
   * Unique id. Counters are keyed by uid, so throttles (and routes) sharing a uid share one budget.
   * @default `METHOD:url-pattern` of the route (plus `#i` for the i-th limit of a route); required for `createThrottle`
   */
  uid?: string
  /**
   * The rate: `'100/min'`, `'5/s'`, `'10/30s'`, `'1000/hour'`, `'500/day'`, `'200/500ms'`,
   * `{ limit, windowMs }`, `null` or `Infinity` for unlimited, or a function of the request
   * (sync or async) returning any of those. `limit: 0` blocks everything.
   * Required (here or in the plugin's `defaults`).
   */
  rate?: RateInput | ((request: FastifyRequest) => MaybePromise<RateInput>)
  /**
   * The algorithm.
   * @default new FixedWindow()
   */
  strategy?: Strategy
  /**
   * Who is being limited: a string key for the client, or EXEMPTED to skip limiting. Sync or async.
   * Identifiers longer than 256 characters are hashed. Throwing fails the request (500).
   * @default request.ip, with IPv6 addresses masked to their /64 and IPv4-mapped IPv6 counted as IPv4
   */
  identifier?: (request: FastifyRequest) => MaybePromise<IdentifierResult>
  /**
   * Units of capacity one request consumes: a non-negative integer, or a function of the request
   * (sync or async) returning one. 0 consumes nothing.
   * @default 1
   */
  cost?: number | ((request: FastifyRequest) => MaybePromise<number>)
  /**
   * What a backend failure (error or timeout) means: `'throttle'` answers 429 (fail closed),
   * `'allow'` lets the request through without headers (fail open), `'raise'` passes the
   * `TRAFFIK_ERR_BACKEND*` error to Fastify's error handling, or a handler decides.
   * Errors of identifier, rate and cost functions are not backend failures: they fail the request.
   * @default 'throttle'
   */
  onError?: OnErrorOption
  /**
   * Response headers.
   * @default 'legacy' (x-ratelimit-limit / -remaining / -reset, and retry-after on 429)
   */
  headers?: HeadersOption
  /**
   * Pin this throttle to a backend.
   * @default the plugin's `backend` (an InMemoryBackend unless configured)
   */
  backend?: ThrottleBackend
  /**
   * Use the request's backend: `request.throttleBackend` (set by your own hook), else the plugin's
   * `resolveBackend` (asked when this throttle runs), else the one made active by `backend.run(fn)`.
   * With `true`, a request none of them names counts in the plugin's default backend; with
   * `'required'` it fails with `TRAFFIK_ERR_NO_BACKEND` (HTTP 500) instead, so a tenant is never
   * counted in the wrong place in silence. Cannot be combined with `backend`.
   * @default false
   */
  dynamicBackend?: boolean | 'required'
  /**
   * Custom rejection. Called instead of throwing the coded 429 error; the reply already carries
   * the rate-limit headers. Send a reply (or throw) from it. Sync or async.
   * @default throws `TRAFFIK_ERR_RATE_LIMITED` (status 429) to Fastify's error handling
   */
  onThrottled?: (request: FastifyRequest, reply: FastifyReply, info: ThrottledInfo) => unknown
  /**
   * When the throttle applies: `throttleIf(...)` gates (all must match) and `bypassIf(...)`
   * exemptions (none may match), by method, anchored path glob, or predicate. A skipped request
   * gets no headers and touches no backend. Rules in the plugin's `defaults` apply to every
   * throttle the plugin builds, before the throttle's own.
   * @default [] (always applies)
   */
  rules?: ReadonlyArray<Rule<FastifyRequest>>
  /**
   * Shadow mode (a dry run): the throttle decides and charges its backend as usual but never
   * rejects, never delays, and writes no rate-limit headers (unless `{ headers: true }`); a
   * request it would have rejected is reported as a `'shadow-throttled'` decision event and in
   * the logs (see docs/shadow-mode.md). Applies to `hit`, `reserve` and the hooks; `check` and
   * `stat` report the real state. Switch it at run time with `throttle.setShadow(...)`.
   * @default false
   */
  shadow?: boolean | ShadowOptions
  /**
   * Allow and deny lists of this throttle, by exact value or CIDR range (IPv4 and IPv6), static or
   * from a function: an allowed client is exempt (no headers, no backend call), a denied one is
   * refused with `TRAFFIK_ERR_DENIED` (403, or `deniedStatus` / `onDenied`) before any backend is
   * touched. Checked after `rules`, before the identifier (after it with `match: 'identifier'`).
   * See docs/lists.md.
   * @default none
   */
  lists?: ListsOptions
  /**
   * Escalation: after rejections, block the client for durations that grow per offence, ban it
   * after `ban.after` offences (403 by default, `onBanReach`), and/or `continueExceeding` (every
   * rejection restarts the client's window). See docs/escalation.md.
   * @default none (a rejection blocks nothing beyond the limit itself)
   */
  escalation?: EscalationOptions
  /**
   * Counting by response: the request is charged before the handler as usual, and its charge is
   * given back on `onResponse` when this returns false (sync or async), so only the responses
   * you choose count. A client at the limit is still refused before the handler runs. Only on
   * routes limited through the plugin (`config.rateLimit`, `global`). See docs/counting-by-response.md.
   * @default none (every admitted request counts)
   */
  countIf?: (request: FastifyRequest, reply: FastifyReply) => MaybePromise<boolean>
  /**
   * Shorthand: give the charge back when the response status is below 400, so only failures
   * count (failed logins). Not with `countIf` or `skipFailed`.
   * @default false
   */
  skipSuccessful?: boolean
  /**
   * Shorthand: give the charge back when the response status is 400 or above, so only successes
   * count. Not with `countIf` or `skipSuccessful`.
   * @default false
   */
  skipFailed?: boolean
  /**
   * With `countIf`, `skipSuccessful` or `skipFailed`: whether a request whose client went away
   * before the response was sent counts (`true`) or gets its charge back (`false`).
   * @default true
   */
  countAborted?: boolean
  /**
   * Priority classes on this throttle's one budget: `of(request)` names the class, `shares` gives
   * each class's share of the limit in (0, 1]. A request is admitted while the budget used stays
   * within its class's share, so the class with share 1 always finds the headroom above the
   * others. Needs a strategy whose state counts what was used (FixedWindow, SlidingWindowCounter,
   * SlidingWindowLog, Concurrency). See docs/priority.md.
   * @default undefined (every request is decided against the whole limit)
   */
  priority?: PriorityOptions
  /**
   * Shrinks the limit while the server is saturated and lets it recover as the pressure clears:
   * `true` reads this process's event loop (utilisation and delay, perf_hooks); or give options.
   * Classes of `priority` below share 1 shed first. Needs the same strategies as `priority`.
   * See docs/adaptive.md.
   * @default false (the limit does not depend on the server's load)
   */
  adaptive?: boolean | AdaptiveOptions
  /**
   * Bounded-staleness leases, opt in: on a network backend (Redis, Memcached, ClusterBackend,
   * custom), this process takes several units of a hot key's budget in one round trip and decides
   * the next hits on that key locally until they are spent or the lease ends; a cold key stays
   * exact. FixedWindow and TokenBucket only; not with `escalation`, `priority` or `adaptive`.
   * `true` takes the defaults of LeaseOptions. See docs/leases.md for the bound.
   * @default false (every decision asks the backend)
   */
  lease?: boolean | LeaseOptions
}

/** Options of `lease` (a throttle option). */
export interface LeaseOptions {
  /**
   * Most units one lease takes (K never exceeds it).
   * @default 10
   */
  maxUnits?: number
  /**
   * Most units one lease takes, as a share of the limit, in (0, 1]: K ≤ floor(maxShare × limit), at least 1.
   * @default 0.1
   */
  maxShare?: number
  /**
   * How long a lease lasts at most, in ms (FixedWindow leases also end with their window). K is
   * the units this process asked on the key per `ttlMs`, so it is also the period over which the rate is measured.
   * @default 1000
   */
  ttlMs?: number
  /**
   * How many keys this process keeps lease records for; past it the oldest record goes (its unused units lapse).
   * @default 10000
   */
  maxKeys?: number
  /**
   * The time source of the leases, in ms since the epoch, for tests.
   * @default the system clock (`Date.now()`)
   */
  clock?: { now(): number }
}

/** Options of `priority` (a throttle option). */
export interface PriorityOptions<Request = FastifyRequest> {
  /** The class of a request (sync or async), one of the names in `shares`. */
  of: (request: Request) => MaybePromise<string>
  /**
   * Each class's share of the limit, in (0, 1]: a request of the class is admitted while the
   * budget used, itself included, is at most `floor(share × limit)`. Give the most important
   * class 1.
   */
  shares: Readonly<Record<string, number>>
  /**
   * The class of a request whose `of` answers a name not in `shares`.
   * @default the class with the smallest share
   */
  fallback?: string
}

/** Options of `adaptive` (a throttle option). */
export interface AdaptiveOptions {
  /**
   * Where the pressure comes from: `'event-loop'` (this process: event-loop utilisation and p99
   * delay, sampled every 250 ms and smoothed), or a function returning the pressure now in
   * [0, 1] (0: healthy, 1: saturated), called on each request, so keep it cheap.
   * @default 'event-loop'
   */
  signal?: 'event-loop' | (() => number)
  /**
   * The fraction of the limit the top class (share 1, or every request without `priority`)
   * keeps at full pressure. Lower classes drop to nothing.
   * @default 0.5
   */
  minFactor?: number
  /**
   * `'event-loop'` only: the utilisation at which pressure starts, and at which it is full.
   * @default [0.8, 0.98]
   */
  utilization?: [number, number]
  /**
   * `'event-loop'` only: the p99 event-loop delay, in ms, at which pressure starts, and at which it is full.
   * @default [50, 500]
   */
  delayMs?: [number, number]
}
