/**
 * Adds a hook to a route's own hooks of one kind, after those already there (so the route's
 * authentication runs first). Used in `onRoute`, by the plugin and by the compat plugin.
 */
import type { RouteOptions } from 'fastify'

/** The route hook kinds the plugins attach to. */
export type RouteHookKind = 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler' | 'onResponse' | 'onRequestAbort'

export function attachHook (route: RouteOptions, kind: RouteHookKind, hook: (...args: never[]) => unknown): void {
  const target = route as unknown as Record<string, unknown>
  const existing = target[kind]
  if (existing === undefined || existing === null) target[kind] = hook
  else if (Array.isArray(existing)) target[kind] = [...existing, hook]
  else target[kind] = [existing, hook]
}
