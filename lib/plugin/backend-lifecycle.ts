/**
 * The backends the plugin owns: initialized in `onReady`, reset (when not persistent) and closed
 * in `onClose`. Also the `resolveBackend` hook, which initializes a foreign backend once.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { ThrottleBackend } from '../backends/throttle-backend.js'
import { invalidOption, describeValue } from '../errors.js'
import { isPromiseLike } from '../throttle/maybe-promise.js'
import type { TraffikPluginOptions } from './plugin-options.js'

export function manageBackends (fastify: FastifyInstance, owned: readonly ThrottleBackend[]): void {
  fastify.addHook('onReady', async () => {
    await Promise.all(owned.map(async (backend) => { await backend.initialize() }))
  })
  fastify.addHook('onClose', async () => {
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
}

/**
 * Builds the onRequest hook that stores `resolveBackend(request)` on `request.throttleBackend`.
 * A sync answer with an initialized backend calls `done` at once, allocating nothing per request.
 */
export function createBackendResolver (resolve: NonNullable<TraffikPluginOptions['resolveBackend']>) {
  return function resolveThrottleBackend (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    let pending: Promise<void> | undefined
    try {
      const chosen = resolve(request)
      if (isPromiseLike<ThrottleBackend | null | undefined>(chosen)) {
        Promise.resolve(chosen).then((backend) => assignBackend(request, backend)).then(() => { done() }, done)
        return
      }
      pending = assignBackend(request, chosen)
    } catch (error) {
      done(error as Error)
      return
    }
    if (pending === undefined) done()
    else pending.then(() => { done() }, done)
  }
}

/** Stores the chosen backend on the request; resolves when a first use had to initialize it. */
function assignBackend (request: FastifyRequest, backend: ThrottleBackend | null | undefined): Promise<void> | undefined {
  if (backend === null || backend === undefined) return undefined
  if (!(backend instanceof ThrottleBackend)) {
    invalidOption('resolveBackend', 'a function returning a ThrottleBackend (or null)', describeValue(backend))
  }
  request.throttleBackend = backend
  // A backend the plugin does not own is initialized on first use (concurrent requests share
  // one initialization). A closed one stays closed. A failure is not this request's error: the
  // throttle's backend call fails next, and its onError policy answers.
  if (!backend.initialized && !backend.closed) return backend.initialize().catch(() => {})
  return undefined
}
