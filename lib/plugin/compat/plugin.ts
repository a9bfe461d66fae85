/**
 * `fastify-traffik/compat`: a Fastify plugin that takes `@fastify/rate-limit`'s options and
 * answers as it does, with native throttles and backends underneath.
 */
import type { FastifyInstance, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { InMemoryBackend } from '../../backends/in-memory-backend.js'
import { RedisBackend } from '../../backends/redis-backend.js'
import type { ThrottleBackend } from '../../backends/throttle-backend.js'
import { InvalidRouteConfigError, describeValue, invalidOption } from '../../errors.js'
import { attachHook } from '../attach-hook.js'
import { manageBackends } from '../backend-lifecycle.js'
import { routeName } from '../unseen-routes.js'
import type { Throttle } from '../../throttle/throttle.js'
import { CompatLimit } from './compat-limit.js'
import { childStore, openStore } from './callback-store.js'
import type { RateLimitOptions, RateLimitPluginOptions, RateLimitStore } from './options.js'
import { mergeParams, type LimitParams } from './params.js'

/** What a compat registration offers besides the hooks: its backend and its native throttles. */
export interface RateLimitCompat {
  /** The backend holding this registration's counters (an InMemoryBackend, or Redis with `redis`; with a `store`, an unused InMemoryBackend). */
  readonly backend: ThrottleBackend
  /** The native throttle of each limit, by uid (`global`, `GET:/route`, `group:<id>`, `rateLimit#1`). */
  readonly throttles: ReadonlyMap<string, Throttle>
  /**
   * Clears every counter compat keeps for this registration (tests call it between cases). A
   * callback `store` keeps its own counters: its contract has no reset, so clear it yourself.
   */
  reset(): Promise<void>
}

async function compatPlugin (fastify: FastifyInstance, options: RateLimitPluginOptions): Promise<void> {
  const opts = options ?? {}
  const global = mergeParams(opts, 'options')
  if (opts.global !== undefined && typeof opts.global !== 'boolean') invalidOption('global', 'a boolean', opts.global)
  if (opts.cache !== undefined && (!Number.isSafeInteger(opts.cache) || opts.cache < 1)) invalidOption('cache', 'a positive integer', opts.cache)
  if (opts.nameSpace !== undefined && (typeof opts.nameSpace !== 'string' || opts.nameSpace.length === 0)) invalidOption('nameSpace', 'a non-empty string', opts.nameSpace)
  // With a store, the store is the limiter and `redis` goes unused, as in the old plugin: no
  // RedisBackend is made on the client (its start-up would check a server nothing counts in).
  const backend: ThrottleBackend = opts.redis !== undefined && opts.redis !== null && opts.store === undefined
    ? new RedisBackend(opts.redis, { namespace: opts.nameSpace ?? 'fastify-rate-limit-' })
    : new InMemoryBackend({ maxKeys: opts.cache ?? 1_000_000 }) // its clock follows mocked Date.now, as the old plugin's did
  const ran = Symbol('fastify-traffik/compat ran')
  const limits = new Map<string, CompatLimit>()
  const throttles = new Map<string, Throttle>()
  // A callback store is made once, with the plugin's options, and each route's limit uses its
  // child(), as the old plugin does; without one, native throttles count in `backend`.
  const store = global.store === undefined ? undefined : openStore(global.store, storeOptions(opts, global), 'options.store')
  const limitFor = (uid: string, params: LimitParams, routeStore?: () => RateLimitStore): CompatLimit => {
    let limit = limits.get(uid)
    if (limit === undefined) {
      limit = new CompatLimit(uid, params, backend, ran, routeStore === undefined ? store : routeStore())
      limits.set(uid, limit)
      if (limit.throttle !== undefined) throttles.set(uid, limit.throttle)
    }
    return limit
  }
  const childOf = (declared: RateLimitOptions, params: LimitParams, routeInfo: object, where: string): (() => RateLimitStore) | undefined =>
    store === undefined ? undefined : () => childStore(store, { ...storeOptions({ ...opts, ...declared }, params), routeInfo }, where)
  const globalLimit = (): CompatLimit => limitFor('global', global)
  let decorated = 0

  const compat: RateLimitCompat = {
    backend,
    throttles,
    reset: async () => { await backend.reset() }
  }
  if (!fastify.hasDecorator('rateLimitCompat')) fastify.decorate('rateLimitCompat', compat)
  if (!fastify.hasDecorator('rateLimit')) {
    fastify.decorate('rateLimit', ((routeOptions?: RateLimitOptions) => {
      if (routeOptions === undefined) return globalLimit().hook
      const params = mergeParams(routeOptions, 'rateLimit()', global)
      return limitFor(params.groupId === undefined ? `rateLimit#${++decorated}` : `group:${params.groupId}`, params, childOf(routeOptions, params, {}, 'rateLimit()')).hook
    }) as never)
  }

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const declared = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit
    let limit: CompatLimit
    if (declared === false) return
    if (declared === undefined || declared === null) {
      if (opts.global === false) return
      limit = globalLimit()
    } else if (typeof declared === 'object' && !Array.isArray(declared)) {
      const where = `config.rateLimit of ${routeName(route.method, route.url)}`
      const params = mergeParams(declared as RateLimitOptions, where, global)
      limit = limitFor(params.groupId === undefined ? `${String(route.method)}:${route.url}` : `group:${params.groupId}`, params, childOf(declared as RateLimitOptions, params, route, where))
    } else {
      throw new InvalidRouteConfigError(routeName(route.method, route.url), 'Unknown value for route rate-limit configuration: expected @fastify/rate-limit options or false', describeValue(declared))
    }
    attachHook(route, limit.params.hook, limit.hook)
  })
  // A store that fails at boot fails the start, unless skipOnError lets requests through without it.
  manageBackends(fastify, [backend], { startup: global.skipOnError ? 'degraded' : 'required', failsClosed: false })
}

/** The options a callback store is given: the user's, with the values read as the old plugin reads them. */
function storeOptions (options: RateLimitOptions, params: LimitParams): Record<string, unknown> {
  return {
    ...options,
    max: params.max,
    timeWindow: params.timeWindow,
    ban: params.ban,
    continueExceeding: params.continueExceeding,
    exponentialBackoff: params.exponentialBackoff
  }
}

/** The plugin: register it where `@fastify/rate-limit` was registered, with the same options. */
export const fastifyRateLimit = fp(compatPlugin, { fastify: '5.x', name: 'fastify-traffik-compat' })
