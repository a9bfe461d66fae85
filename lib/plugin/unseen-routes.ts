/**
 * The check for routes the plugin never saw. Fastify runs `onRoute` hooks only for routes declared
 * after the hook exists, so a route declared before the plugin loaded (the plugin registered after
 * the routes, or without `await`) keeps its `config.rateLimit` unread: silently unlimited.
 *
 * Fastify has no public way to list route configs at startup, but it does apply root hooks added
 * later to routes declared earlier. So when routes already exist as the plugin loads, the plugin
 * adds one root `onRequest` hook that judges each route once, on its first request, and remembers
 * the verdict. A plugin registered before every route adds nothing and costs nothing.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { UnseenRouteError } from '../errors.js'

type CodedError = Error & { code: string }

/** The routes whose limits the plugin built (or deliberately left alone), by method and URL. */
export class SeenRoutes {
  readonly #keys = new Set<string>()

  record (route: Pick<RouteOptions, 'method' | 'url'>): void {
    this.#keys.add(routeKey(route.method, route.url))
  }

  has (method: unknown, url: unknown): boolean {
    return this.#keys.has(routeKey(method, url))
  }
}

/** The route's name in messages: `GET /items/:id`. */
export function routeName (method: unknown, url: unknown): string {
  return `${Array.isArray(method) ? method.join(',') : String(method)} ${String(url)}`
}

const routeKey = routeName

/**
 * Adds the unseen-route hook when routes were declared before the plugin loaded. `hasGlobal`: the
 * plugin has `global` limits, which every route it did not see has missed too.
 */
export function guardUnseenRoutes (fastify: FastifyInstance, mode: 'error' | 'warn', seen: SeenRoutes, hasGlobal: boolean): void {
  if (!routesExist(fastify)) return
  const verdicts = new WeakMap<object, CodedError | null>()
  fastify.addHook('onRequest', function checkUnseenRoute (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const config = request.routeOptions.config as (Record<string, unknown> & { method?: unknown, url?: unknown }) | undefined
    if (config === undefined || config === null) return done()
    let verdict = verdicts.get(config)
    if (verdict === undefined) {
      verdict = judge(config, seen, hasGlobal)
      verdicts.set(config, verdict)
      if (verdict !== null) {
        if (mode === 'error') fastify.log.error({ code: verdict.code, route: routeName(config.method, config.url) }, verdict.message)
        else fastify.log.warn({ code: 'TRAFFIK_WARN_UNSEEN_ROUTE', route: routeName(config.method, config.url) }, verdict.message)
      }
    }
    done(verdict !== null && mode === 'error' ? verdict : undefined)
  })
}

function judge (config: Record<string, unknown> & { method?: unknown, url?: unknown }, seen: SeenRoutes, hasGlobal: boolean): CodedError | null {
  const declared = config.rateLimit
  if (declared === false || seen.has(config.method, config.url)) return null
  if (declared !== undefined) return new UnseenRouteError(routeName(config.method, config.url), 'config.rateLimit')
  if (hasGlobal) return new UnseenRouteError(routeName(config.method, config.url), "the plugin's global limits")
  return null
}

/** Whether the app has routes already. find-my-way prints `(empty tree)` for none; anything else
 * (including a future change of that text) counts as routes, which only costs the check. */
function routesExist (fastify: FastifyInstance): boolean {
  return fastify.printRoutes().trim() !== '(empty tree)'
}
