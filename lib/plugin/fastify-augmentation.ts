/**
 * Fastify type augmentation: `config.rateLimit` on routes, `fastify.throttle`, `request.throttleBackend`.
 */
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import type { GroupOutcome } from '../throttle/limit-group.js'
import type { RouteRateLimit } from './plugin-options.js'
import type { ThrottleController } from './throttle-controller.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** This route's limits, or `false` to opt out of the plugin's `global` limits. */
    rateLimit?: RouteRateLimit
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
