/**
 * The backends the plugin owns: started in `onReady` (as their `startup` says), reset (when not
 * persistent) and closed in `onClose`, and their transitions (degraded, down, recovered) logged
 * once each through the app's logger. Also the `resolveBackend` hook, which starts a foreign
 * backend on first use without letting a request wait out its connection.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { BackendTransition } from '../../types/backend.js'
import { ThrottleBackend } from '../backends/throttle-backend.js'
import { invalidOption, describeValue } from '../errors.js'
import type { BackendResolver, ThrottleRequest } from '../throttle/contracts.js'
import { isPromiseLike } from '../throttle/maybe-promise.js'
import type { PluginConfig, TraffikPluginOptions } from './plugin-options.js'

/** Subscribes the app's logger to a backend's transitions (once per backend); see `manageBackends`. */
export type WatchBackend = (backend: ThrottleBackend) => void

export function manageBackends (fastify: FastifyInstance, owned: readonly ThrottleBackend[], config: Pick<PluginConfig, 'startup' | 'failsClosed'>): WatchBackend {
  const watched = new Map<ThrottleBackend, () => void>()
  const watch: WatchBackend = (backend) => {
    if (watched.has(backend)) return
    watched.set(backend, backend.onTransition((transition) => { logTransition(fastify.log, backend, transition, config.failsClosed) }))
  }
  for (const backend of owned) watch(backend)
  fastify.addHook('onReady', async () => {
    await Promise.all(owned.map(async (backend) => { await backend.start(backend.startup ?? config.startup) }))
  })
  fastify.addHook('onClose', async () => {
    for (const unwatch of watched.values()) unwatch()
    watched.clear()
    const errors: unknown[] = []
    for (const backend of owned) {
      try {
        if (!backend.persistent && backend.initialized) await backend.reset()
      } catch (error) {
        errors.push(error)
      }
      try {
        await backend.close()
      } catch (error) {
        errors.push(error)
      }
    }
    if (errors.length > 0) fastify.log.warn({ errors }, 'fastify-traffik: errors while closing backends')
  })
  return watch
}

/**
 * One log line per transition. An outage is a warning, or an error when the plugin's limits fail
 * closed (`onError: 'throttle'`, the default), since every limited request is then rejected.
 */
function logTransition (log: FastifyBaseLogger, backend: ThrottleBackend, transition: BackendTransition, failsClosed: boolean): void {
  const fields = { backend: backend.name, namespace: backend.namespace }
  if (transition.type === 'recovered') {
    log.info({ ...fields, downtimeMs: transition.downtimeMs }, `fastify-traffik: backend ${backend.name} recovered after ${transition.downtimeMs} ms; limits apply again`)
    return
  }
  const what = transition.type === 'degraded'
    ? `backend ${backend.name} could not connect at start; the app runs degraded while it keeps connecting in the background`
    : `backend ${backend.name} is down`
  const until = transition.type === 'degraded' ? 'it connects' : 'it recovers'
  const consequence = failsClosed
    ? `until ${until}, limits that fail closed (onError 'throttle') answer 429 to every request they limit`
    : `until ${until}, each limit's onError answers for it`
  const level = failsClosed ? 'error' : 'warn'
  log[level]({ ...fields, err: transition.error }, `fastify-traffik: ${what}: ${transition.error?.message ?? 'no answer'}; ${consequence}`)
}

/**
 * `resolveBackend` as the dynamic limits ask it, when they run (`resolveBackendAt: 'limit'`): after
 * the hooks that precede the limit, such as the route's authentication. Asked once per request
 * (several dynamic limits of one request share the answer); the answer is stored on
 * `request.throttleBackend`.
 */
export function createLimitResolver (resolve: NonNullable<TraffikPluginOptions['resolveBackend']>, watch: WatchBackend = () => {}): BackendResolver {
  const pending = new WeakMap<object, Promise<ThrottleBackend | null>>()
  const answeredNone = new WeakSet<object>()
  return (request) => {
    // Jobs and scripts calling hit() pass objects of their own: they choose with backend.run().
    if ((request as { raw?: unknown }).raw === undefined || answeredNone.has(request)) return null
    const inFlight = pending.get(request)
    if (inFlight !== undefined) return inFlight
    const chosen = resolve(request as FastifyRequest)
    if (isPromiseLike<ThrottleBackend | null | undefined>(chosen)) {
      const answer = Promise.resolve(chosen).then((backend) => settle(request, backend))
      pending.set(request, answer)
      return answer
    }
    return settle(request, chosen)
  }

  function settle (request: ThrottleRequest, backend: ThrottleBackend | null | undefined): ThrottleBackend | null | Promise<ThrottleBackend> {
    const initializing = assignBackend(request, backend, watch)
    if (backend === null || backend === undefined) {
      answeredNone.add(request)
      return null
    }
    return initializing === undefined ? backend : initializing.then(() => backend)
  }
}

/**
 * Builds the onRequest hook that stores `resolveBackend(request)` on `request.throttleBackend`
 * (`resolveBackendAt: 'onRequest'`). A sync answer with an initialized backend calls `done` at
 * once, allocating nothing per request.
 */
export function createBackendResolver (resolve: NonNullable<TraffikPluginOptions['resolveBackend']>, watch: WatchBackend = () => {}) {
  return function resolveThrottleBackend (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    let pending: Promise<void> | undefined
    try {
      const chosen = resolve(request)
      if (isPromiseLike<ThrottleBackend | null | undefined>(chosen)) {
        Promise.resolve(chosen).then((backend) => assignBackend(request, backend, watch)).then(() => { done() }, done)
        return
      }
      pending = assignBackend(request, chosen, watch)
    } catch (error) {
      done(error as Error)
      return
    }
    if (pending === undefined) done()
    else pending.then(() => { done() }, done)
  }
}

/** Stores the chosen backend on the request; resolves when a first use had to start it. */
function assignBackend (request: ThrottleRequest, backend: ThrottleBackend | null | undefined, watch: WatchBackend): Promise<void> | undefined {
  if (backend === null || backend === undefined) return undefined
  if (!(backend instanceof ThrottleBackend)) {
    invalidOption('resolveBackend', 'a function returning a ThrottleBackend (or null)', describeValue(backend))
  }
  // Typed here rather than through the plugin's Fastify augmentation, which this file does not
  // load: fastify-traffik/compat uses this file and must not declare the native route config.
  ;(request as { throttleBackend?: ThrottleBackend | null }).throttleBackend = backend
  // A backend the plugin does not own is started on first use, degraded: the request waits for
  // the connection at most the backend's deadline, and while it is not connected its calls fail
  // at once and the throttle's onError answers. Concurrent requests share one start; a closed
  // backend stays closed.
  if (!backend.initialized && !backend.closed) {
    watch(backend)
    return backend.start('degraded')
  }
  return undefined
}
