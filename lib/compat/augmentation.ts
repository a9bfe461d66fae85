/**
 * Fastify type augmentation of `fastify-traffik/compat`. `config.rateLimit` is declared through
 * a base interface, not as a property: when `@fastify/rate-limit` is installed too (the usual
 * state in the middle of a migration), its own declaration of the property fits this one instead
 * of clashing with it (TS2717), so `tsc --strict` passes with both packages.
 */
import type { ContextConfigDefault, FastifySchema, preHandlerAsyncHookHandler, RouteGenericInterface } from 'fastify'
import type { RouteRateLimit } from '../plugin/plugin-options.js'
import type { RateLimitOptions } from '../plugin/compat/options.js'
import type { RateLimitCompat } from '../plugin/compat/plugin.js'

/** `config.rateLimit` as compat reads it (and as the native plugin reads it, for apps using both). */
export interface RateLimitContextConfig {
  /** `@fastify/rate-limit` route options, or `false` to opt out of the global limit. */
  rateLimit?: RateLimitOptions | RouteRateLimit | false
}

declare module 'fastify' {
  interface FastifyContextConfig extends RateLimitContextConfig {}
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /**
     * A hook enforcing the global limit (no options) or a limit of its own (options), for
     * `onRequest` / `preHandler` of any route or `setNotFoundHandler`.
     */
    rateLimit<
      RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
      ContextConfig = ContextConfigDefault,
      SchemaCompiler extends FastifySchema = FastifySchema
    >(options?: RateLimitOptions): preHandlerAsyncHookHandler<RawServer, RawRequest, RawReply, RouteGeneric, ContextConfig, SchemaCompiler, TypeProvider, Logger>
    /** The compat registration's backend and native throttles (the first registration's). */
    rateLimitCompat: RateLimitCompat
  }
}
