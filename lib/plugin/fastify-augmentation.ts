/**
 * Fastify type augmentation: `config.rateLimit` on routes, `fastify.throttle`, `request.throttleBackend`,
 * and `register(traffik, (instance) => options)` checked without an annotation.
 */
import type { FastifyPluginAsync, RegisterOptions } from 'fastify'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import type { GroupOutcome } from '../throttle/limit-group.js'
import type { TraffikPluginOptions } from './plugin-options.js'
import type { RouteRateLimit, RouteRateLimitShapes } from './route-rate-limit.js'
import type { ThrottleController } from './throttle-controller.js'

declare module './route-rate-limit.js' {
  interface RouteRateLimitShapes {
    native: RouteRateLimit
  }
}

declare module 'fastify' {
  interface FastifyRegister<T> {
    /**
     * Registers fastify-traffik. Fastify's generic signatures infer the options from the function
     * form's result before checking it, which widens `'draft-7'` to `string`; this one knows the
     * options, so `(instance) => ({ backend: new RedisBackend(instance.redis), ... })` compiles as written.
     */
    (plugin: FastifyPluginAsync<TraffikPluginOptions>, opts?: (RegisterOptions & TraffikPluginOptions) | ((instance: FastifyInstance) => RegisterOptions & TraffikPluginOptions)): T
  }
  interface FastifyContextConfig {
    /** This route's limits, or `false` to opt out of the plugin's `global` limits. */
    rateLimit?: RouteRateLimitShapes[keyof RouteRateLimitShapes]
  }
  interface FastifyInstance {
    /** The throttle registry and controls of this instance (fastify-traffik). */
    throttle: ThrottleController
  }
  interface FastifyRequest {
    /** The backend of this request for `dynamicBackend` throttles; null until a hook sets it. */
    throttleBackend: ThrottleBackend | null
    /**
     * The outcome of this request's limits once they decided it: `decision` (the most restrictive,
     * the one the headers report), `decisions` and `throttles` (every applying limit, in order),
     * `throttle`, `key`, `windowMs`. null when no limit applied (exempt, bypassed, disabled,
     * unlimited, `rateLimit: false`) or before the limit hook ran.
     */
    rateLimit: GroupOutcome | null
  }
}
