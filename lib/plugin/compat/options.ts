/**
 * The option surface of `@fastify/rate-limit` (v11), as `fastify-traffik/compat` reads it. Every
 * option says the default the old plugin documents.
 */
import type { FastifyRequest } from 'fastify'

/** What `errorResponseBuilder` receives. */
export interface ErrorResponseBuilderContext {
  /** 429 for a rejection, 403 for a banned client. */
  statusCode: number
  ban: boolean
  /** The wait in words: `'1 second'`, `'7 seconds'`, `'1 minute'`. */
  after: string
  max: number
  /** Milliseconds until the window resets. */
  ttl: number
}

/** The hooks the limit can run in. */
export type RateLimitHook = 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler'

/** Which headers an allowed (`addHeadersOnExceeding`) or rejected (`addHeaders`) response carries. */
export interface RateLimitAddHeaders {
  'x-ratelimit-limit'?: boolean
  'x-ratelimit-remaining'?: boolean
  'x-ratelimit-reset'?: boolean
  'ratelimit-limit'?: boolean
  'ratelimit-remaining'?: boolean
  'ratelimit-reset'?: boolean
  'retry-after'?: boolean
}

/**
 * A store in `@fastify/rate-limit`'s callback style: made once with the plugin's options; each
 * route's limit uses `child({ ...options, routeInfo })`. The store is the limiter.
 */
export interface RateLimitStoreCtor {
  new (options: any): RateLimitStore
}

/** The instance a `store` constructor makes; the same shape as `@fastify/rate-limit`'s, so one options object fits both plugins. */
export interface RateLimitStore {
  incr(key: string, callback: (error: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number, max: number): void
  child(routeOptions: any): RateLimitStore
}

/** Options `fastify.createRateLimit(options)` and every limit take. */
export interface CreateRateLimitOptions {
  /**
   * A custom store class (`incr(key, callback, timeWindow, max)` answering `{ current, ttl }`, and
   * `child(routeOptions)`): it counts instead of the native throttles. A plugin option only.
   * @default none (native throttles in memory, or in Redis with `redis`)
   */
  store?: RateLimitStoreCtor
  /**
   * Let requests through when the store fails (with `x-ratelimit-remaining` equal to `max`).
   * @default false (the store's error fails the request with 500)
   */
  skipOnError?: boolean
  /**
   * Requests per window: a number, or a function of the request and its key (sync or async).
   * @default 1000
   */
  max?: number | ((req: FastifyRequest, key: string) => number) | ((req: FastifyRequest, key: string) => Promise<number>)
  /**
   * The window: milliseconds, a string such as `'1 minute'` or `'500ms'`, or a function of the
   * request and its key (sync or async) returning milliseconds.
   * @default 60000
   */
  timeWindow?: number | string | ((req: FastifyRequest, key: string) => number) | ((req: FastifyRequest, key: string) => Promise<number>)
  /**
   * Keys that are never limited (no headers), or a function of the request and its key.
   * @default none
   */
  allowList?: string[] | ((req: FastifyRequest, key: string) => boolean | Promise<boolean>)
  /**
   * The client's key.
   * @default request.ip, IPv6 masked to `ipv6Subnet` bits and IPv4-mapped IPv6 read as IPv4
   */
  keyGenerator?: (req: FastifyRequest) => string | number | Promise<string | number>
  /**
   * Prefix length IPv6 client addresses are masked to by the default key.
   * @default 64
   */
  ipv6Subnet?: number
  /**
   * Rejections tolerated in a window before the client is answered 403 instead of 429: the
   * rejection after `ban` others within `timeWindow` bans the client for one `timeWindow`
   * (`ban: 0` bans on the first rejection). Needs a fixed `timeWindow`.
   * @default -1 (off)
   */
  ban?: number
}

/** Options of one limit: the plugin's, a route's `config.rateLimit`, `fastify.rateLimit(options)`. */
export interface RateLimitOptions extends CreateRateLimitOptions {
  /** @default 'onRequest' */
  hook?: RateLimitHook
  /** In-memory key bound. @default 5000 */
  cache?: number
  /** Each rejected request restarts the window: the client is admitted one `timeWindow` after its last rejected request. @default false */
  continueExceeding?: boolean
  /** Called once per ban, on the rejection that reaches it (with the key), before the 403. @default none */
  onBanReach?: (req: FastifyRequest, key: string) => void
  /** Routes with the same `groupId` share one budget. @default none */
  groupId?: string
  /** Builds the thrown rejection (it needs a `statusCode`). @default an error with the status and `Rate limit exceeded, retry in <after>` */
  errorResponseBuilder?: (req: FastifyRequest, context: ErrorResponseBuilderContext) => object
  /** `ratelimit-*` header names instead of `x-ratelimit-*`. @default false */
  enableDraftSpec?: boolean
  /** Called for each allowed request. @default none */
  onExceeding?: (req: FastifyRequest, key: string) => void
  /** Called for each rejected request. @default none */
  onExceeded?: (req: FastifyRequest, key: string) => void
  /**
   * The n-th rejection in a row blocks for `timeWindow` × 2^(n−1) from it, every request during
   * the block being a further rejection; the count ends with the block. `continueExceeding` wins
   * over it, as before. Needs a fixed `timeWindow`. @default false
   */
  exponentialBackoff?: boolean
  /** Headers of a rejected response. @default all true */
  addHeaders?: RateLimitAddHeaders
  /** Headers of an allowed response. @default all true */
  addHeadersOnExceeding?: RateLimitAddHeaders
}

/** Options of `app.register(compat, options)`. */
export interface RateLimitPluginOptions extends RateLimitOptions {
  /** Limit every route (routes opt out with `config: { rateLimit: false }`). @default true */
  global?: boolean
  /** An ioredis client; counters live in Redis. The client stays yours. @default none (in memory) */
  redis?: any
  /** Redis key prefix. @default 'fastify-rate-limit-' */
  nameSpace?: string
}
