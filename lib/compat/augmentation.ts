/**
 * Fastify type augmentation of `fastify-traffik/compat`. `config.rateLimit` is declared through
 * a base interface, not as a property: when `@fastify/rate-limit` is installed too (the usual
 * state in the middle of a migration), its own declaration of the property fits this one instead
 * of clashing with it (TS2717), so `tsc --strict` passes with both packages.
 */
import type { ContextConfigDefault, FastifyPluginAsync, FastifySchema, preHandlerAsyncHookHandler, RegisterOptions, RouteGenericInterface } from 'fastify'
import type { ForeignOption, OptionsObjectOnly, RouteRateLimitShapes } from '../plugin/route-rate-limit.js'
import type { RateLimitOptions, RateLimitPluginOptions } from '../plugin/compat/options.js'
import type { RateLimitCompat } from '../plugin/compat/plugin.js'
import type { ThrottleOptions } from '../throttle/option-types.js'

/** `config.rateLimit` as compat reads it (and as the native plugin reads it, for apps using both). */
export interface RateLimitContextConfig {
  /** `@fastify/rate-limit` route options, or `false` to opt out of the global limit. */
  rateLimit?: RouteRateLimitShapes[keyof RouteRateLimitShapes]
}

/** A native option name on a compat route limit, refused at compile time with a hint. */
type NativeOptionHints = {
  [Name in Exclude<keyof ThrottleOptions, keyof RateLimitOptions>]?: ForeignOption<`${Name} is an option of the native plugin (fastify-traffik); a compat route takes @fastify/rate-limit's options`>
}

/** A compat route limit: `@fastify/rate-limit`'s options, guarded like the native ones. */
export type CompatRouteOptions = RateLimitOptions & NativeOptionHints & OptionsObjectOnly

// A program importing both plugins accepts either shape on a route, each checked whole: native
// names are refused in the compat shape and compat names in the native one.
declare module '../plugin/route-rate-limit.js' {
  interface RouteRateLimitShapes {
    compat: CompatRouteOptions | false
  }
}

declare module 'fastify' {
  interface FastifyContextConfig extends RateLimitContextConfig {}
  interface FastifyRegister<T> {
    /** Registers compat, checking the function form's result against its options as written. */
    (plugin: FastifyPluginAsync<RateLimitPluginOptions>, opts?: (RegisterOptions & RateLimitPluginOptions) | ((instance: FastifyInstance) => RegisterOptions & RateLimitPluginOptions)): T
  }
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
