/**
 * The Fastify plugin: wiring only. Options are validated once; every route's limits are built in
 * `onRoute`; owned backends follow the app's lifecycle, and their transitions reach the app's log.
 */
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import './fastify-augmentation.js'
import { manageBackends, createBackendResolver, createLimitResolver } from './backend-lifecycle.js'
import type { FleetOverrides } from './fleet-overrides.js'
import { createListHook } from './list-hook.js'
import { resolvePluginOptions, type TraffikPluginOptions } from './plugin-options.js'
import { RouteLimits } from './route-limits.js'
import { createTelemetry } from './telemetry-options.js'
import { proxyHeaderCheck } from './proxy-check.js'
import { ThrottleController } from './throttle-controller.js'
import { guardUnseenRoutes, SeenRoutes } from './unseen-routes.js'

async function traffikPlugin (fastify: FastifyInstance, options: TraffikPluginOptions): Promise<void> {
  const config = resolvePluginOptions(options)
  const owned = [...new Set([config.backend, ...config.backends])]
  // Requests the plugin's allow list admitted: every throttle of this instance skips them.
  const allowed = config.lists === undefined ? undefined : new WeakSet<object>()
  const telemetry = await createTelemetry(config.telemetry)
  const watch = manageBackends(fastify, owned, config)
  const resolver = config.resolveBackend !== undefined && config.resolveBackendAt === 'limit' ? createLimitResolver(config.resolveBackend, watch) : undefined
  const controller = new ThrottleController(config.backend, owned, config.defaults, config.onDecision, { allowed, resolver, telemetry, overrides: config.overrides })
  fastify.decorate('throttle', controller)
  if (controller.overrides !== undefined) followOverrides(fastify, controller.overrides)
  if (!fastify.hasRequestDecorator('throttleBackend')) fastify.decorateRequest('throttleBackend', null)
  // Declared up front (null until a limit decides the request) so every request keeps one shape.
  if (!fastify.hasRequestDecorator('rateLimit')) fastify.decorateRequest('rateLimit', null)
  if (config.lists !== undefined) fastify.addHook('onRequest', createListHook(config.lists, allowed!))
  if (config.resolveBackend !== undefined && config.resolveBackendAt === 'onRequest') {
    fastify.addHook('onRequest', createBackendResolver(config.resolveBackend, watch))
  }
  const seen = new SeenRoutes()
  if (config.validate.unseenRoutes !== 'off') guardUnseenRoutes(fastify, config.validate.unseenRoutes, seen, config.global.length > 0)
  const proxyCheck = config.validate.proxyHeaders ? proxyHeaderCheck(fastify, fastify.log) : undefined
  const routes = new RouteLimits(config, controller, seen, proxyCheck)
  fastify.addHook('onRoute', (route) => { routes.onRoute(route) })
}

/**
 * Reads the fleet's overrides once the backends are ready (a failed read keeps none and is
 * logged; the timer retries), then every `refreshMs` until the app closes.
 */
function followOverrides (fastify: FastifyInstance, overrides: FleetOverrides): void {
  fastify.addHook('onReady', async () => {
    overrides.start(fastify.log)
    await overrides.syncFields()
    await overrides.refresh()
  })
  fastify.addHook('preClose', async () => { overrides.stop() })
}

/** The plugin. Register it before the routes it should limit. */
export const traffik = fp(traffikPlugin, { fastify: '5.x', name: 'fastify-traffik' })
