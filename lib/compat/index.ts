/**
 * fastify-traffik/compat: `@fastify/rate-limit`'s options on fastify-traffik. Swap
 * `import rateLimit from '@fastify/rate-limit'` for `import rateLimit from 'fastify-traffik/compat'`.
 * The native API stays one call away: `fastify.rateLimitCompat.throttles` holds each limit's
 * `Throttle`, and the whole native API is `fastify-traffik`.
 */
import './augmentation.js'
import { fastifyRateLimit } from '../plugin/compat/plugin.js'

export { fastifyRateLimit }
export default fastifyRateLimit
export { normalizeIP } from '../plugin/compat/params.js'
export type { RateLimitCompat } from '../plugin/compat/plugin.js'
export type { RateLimitContextConfig } from './augmentation.js'
export type {
  CreateRateLimitOptions, ErrorResponseBuilderContext, RateLimitAddHeaders, RateLimitHook, RateLimitOptions,
  RateLimitPluginOptions, RateLimitStoreCtor, RateLimitStore
} from '../plugin/compat/options.js'
