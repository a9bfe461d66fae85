/**
 * Route registration: turns a route's `config.rateLimit` (or the plugin's `global`) into one
 * enforcement hook, built once per route. The request path only runs that hook.
 */
import type { FastifyRequest, RouteOptions } from 'fastify'
import { InvalidRouteConfigError, describeValue } from '../errors.js'
import { observerListener } from '../throttle/decision-events.js'
import { createEnforcer, type EnforceHook } from '../throttle/enforce.js'
import { LimitGroup } from '../throttle/limit-group.js'
import { responseCounting } from '../throttle/response-counting.js'
import type { ThrottleOptions } from '../throttle/option-types.js'
import { limitOf, Throttle } from '../throttle/throttle.js'
import type { PluginConfig } from './plugin-options.js'
import { attachHook } from './attach-hook.js'
import type { ThrottleController } from './throttle-controller.js'
import { routeName as nameOf, type SeenRoutes } from './unseen-routes.js'

/** The per-request proxy check (proxy-check.ts), run before limits that identify by IP. */
type ProxyCheck = (request: FastifyRequest) => void

type LimitSpec = ThrottleOptions | Throttle

export class RouteLimits {
  readonly #config: PluginConfig
  readonly #controller: ThrottleController
  /** Global limits with an explicit uid are one shared throttle, built on first use. */
  readonly #sharedGlobals = new Map<ThrottleOptions, Throttle>()

  readonly #seen: SeenRoutes
  readonly #proxyCheck: ProxyCheck | undefined

  constructor (config: PluginConfig, controller: ThrottleController, seen: SeenRoutes, proxyCheck?: ProxyCheck) {
    this.#config = config
    this.#controller = controller
    this.#seen = seen
    this.#proxyCheck = proxyCheck
  }

  /**
   * The onRoute hook: attaches the enforcement hook to the route, or leaves it alone. A bad limit
   * fails the route's declaration with its coded error, the message starting with the route.
   */
  onRoute (route: RouteOptions): void {
    this.#seen.record(route)
    const routeName = nameOf(route.method, route.url)
    const declared = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit
    const specs = this.#specsOf(declared, routeName)
    if (specs.length === 0) return
    const base = `${methodsOf(route)}:${route.url}`
    let limits
    try {
      limits = specs.map((spec, i) => limitOf(this.#throttleOf(spec, specs.length > 1 ? `${base}#${i}` : base)))
    } catch (error) {
      throw namingRoute(error, routeName)
    }
    const enforce = createEnforcer(new LimitGroup(limits), observerListener(this.#config.onDecision), { exposeOutcome: true })
    const check = this.#proxyCheck
    const hook: EnforceHook = check === undefined || !limits.some((limit) => limit.identifiesByIp)
      ? enforce
      : function enforceAfterProxyCheck (request, reply, done): void {
        check(request as FastifyRequest)
        enforce(request, reply, done)
      }
    attachHook(route, this.#config.hook, hook)
    // Limits counted by response settle once the response is known (or the client left).
    const counting = responseCounting(limits)
    if (counting !== undefined) {
      attachHook(route, 'onResponse', counting.onResponse)
      attachHook(route, 'onRequestAbort', counting.onRequestAbort)
    }
  }

  #specsOf (declared: unknown, routeName: string): readonly LimitSpec[] {
    if (declared === undefined) return this.#config.global
    if (declared === false) return []
    const list = Array.isArray(declared) ? declared : [declared]
    if (list.length === 0) {
      throw new InvalidRouteConfigError(routeName, 'an empty array limits nothing; use false to opt out', '[]')
    }
    for (const spec of list) {
      if (!(spec instanceof Throttle) && (spec === null || typeof spec !== 'object' || Array.isArray(spec))) {
        throw new InvalidRouteConfigError(routeName, 'expected throttle options, a Throttle, an array of those, or false', describeValue(declared))
      }
    }
    return list as LimitSpec[]
  }

  #throttleOf (spec: LimitSpec, defaultUid: string): Throttle {
    if (spec instanceof Throttle) return this.#controller.adopt(spec)
    if (spec.uid !== undefined && this.#config.global.includes(spec)) {
      let shared = this.#sharedGlobals.get(spec)
      if (shared === undefined) {
        shared = this.#controller.build({ ...spec, uid: spec.uid })
        this.#sharedGlobals.set(spec, shared)
      }
      return shared
    }
    return this.#controller.build({ ...spec, uid: spec.uid ?? defaultUid })
  }
}

/** Prefixes a coded error's message with the route it was declared on (and records it as `route`). */
function namingRoute (error: unknown, routeName: string): unknown {
  if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string' && !('route' in error)) {
    error.message = `Route '${routeName}': ${error.message}`
    Object.defineProperty(error, 'route', { value: routeName, enumerable: true })
  }
  return error
}

function methodsOf (route: RouteOptions): string {
  return Array.isArray(route.method) ? route.method.join(',') : route.method
}
