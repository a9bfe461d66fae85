/**
 * The type of a route's `config.rateLimit`. Fastify infers each route's config type from the
 * object literal it is given and intersects it with `FastifyContextConfig`, so TypeScript's usual
 * checks on unknown keys never run there: this type carries its own guards for the mistakes that
 * matter (a primitive where options belong, and other limiters' option names, each with the
 * native name to use instead).
 */
import type { ThrottleOptions } from '../throttle/option-types.js'
import type { Throttle } from '../throttle/throttle.js'

/**
 * An option name of another rate limiter, refused at compile time. The error shows the hint:
 * `Type 'number' is not assignable to type 'ForeignOption<"max: write rate, ...">'`.
 */
export interface ForeignOption<Hint extends string> {
  readonly 'not an option of fastify-traffik': Hint
}

type Compat = 'or import fastify-traffik/compat, which takes @fastify/rate-limit\'s options'

/** `@fastify/rate-limit` and express-rate-limit names on a native route limit, with their native names. */
export interface ForeignOptionHints {
  max?: ForeignOption<`max: write rate, for example rate: '100/min' (${Compat})`>
  timeWindow?: ForeignOption<`timeWindow: write rate, for example rate: '100/min' or '10/30s' (${Compat})`>
  windowMs?: ForeignOption<'windowMs: write rate, for example rate: { limit: 100, windowMs: 60000 }'>
  limit?: ForeignOption<"limit: write rate, for example rate: '100/min' or { limit: 100, windowMs: 60000 }">
  keyGenerator?: ForeignOption<`keyGenerator: write identifier: (request) => string (${Compat})`>
  allowList?: ForeignOption<`allowList: write lists: { allow: [...] } (${Compat})`>
  ban?: ForeignOption<`ban: write escalation: { ban: { after, durationMs } } (${Compat})`>
  onBanReach?: ForeignOption<`onBanReach: write escalation: { onBanReach } (${Compat})`>
  continueExceeding?: ForeignOption<`continueExceeding: write escalation: { continueExceeding: true } (${Compat})`>
  exponentialBackoff?: ForeignOption<`exponentialBackoff: write escalation: { blocks: { initialMs, factor: 2 }, offendWhileBlocked: true, periodMs: 'block' } (${Compat})`>
  errorResponseBuilder?: ForeignOption<`errorResponseBuilder: write onThrottled: (request, reply, info) => ... (${Compat})`>
  onExceeded?: ForeignOption<`onExceeded: write onThrottled, or the plugin's onDecision (${Compat})`>
  onExceeding?: ForeignOption<`onExceeding: use the plugin's onDecision (${Compat})`>
  addHeaders?: ForeignOption<`addHeaders: write headers: 'legacy' | 'draft-7' | { ... } | false (${Compat})`>
  addHeadersOnExceeding?: ForeignOption<`addHeadersOnExceeding: write headers: 'legacy' | 'draft-7' | { ... } | false (${Compat})`>
  enableDraftSpec?: ForeignOption<`enableDraftSpec: write headers: 'draft-6' (${Compat})`>
  skipOnError?: ForeignOption<`skipOnError: write onError: 'allow' (${Compat})`>
  groupId?: ForeignOption<`groupId: write uid: the same uid shares one budget (${Compat})`>
  store?: ForeignOption<`store: write backend: a ThrottleBackend (${Compat})`>
  redis?: ForeignOption<`redis: write backend: new RedisBackend(client) (${Compat})`>
  skipSuccessfulRequests?: ForeignOption<'skipSuccessfulRequests: write skipSuccessful: true'>
  skipFailedRequests?: ForeignOption<'skipFailedRequests: write skipFailed: true'>
}

/**
 * Refuses a primitive (`rateLimit: true`, `'5/s'`, `10`) or a list where one options object
 * belongs. An options object has neither a `valueOf` of its own nor a `length`, so the guard is
 * invisible to it, while a primitive's `valueOf` returns the primitive and a list has a length.
 */
export interface OptionsObjectOnly {
  valueOf?: () => object
  length?: never
}

/** One native limit written as options on a route. */
export type RouteThrottleOptions = ThrottleOptions & ForeignOptionHints & OptionsObjectOnly

/** What a route's `config.rateLimit` accepts. */
export type RouteRateLimit = RouteThrottleOptions | Throttle | ReadonlyArray<RouteThrottleOptions | Throttle> | false

/**
 * Every shape `config.rateLimit` may take in this program, by the entry point that declares it:
 * importing `fastify-traffik` adds `native`, importing `fastify-traffik/compat` adds `compat` (its
 * `@fastify/rate-limit` options). Each entry point declares `config.rateLimit` as the union of
 * these, so a program importing one gets that one's checks and a program importing both accepts
 * either shape.
 */
export interface RouteRateLimitShapes {}
