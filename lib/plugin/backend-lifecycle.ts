/**
 * The backends the plugin owns: initialized in `onReady`, reset (when not persistent) and closed
 * in `onClose`. Also the `resolveBackend` hook, which initializes a foreign backend once.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { TraffikPluginOptions } from '../../types/options.js'
import { ThrottleBackend } from '../backends/throttle-backend.js'
import { invalidOption, describeValue } from '../errors.js'
import { then } from '../throttle/maybe-promise.js'

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

/** Builds the onRequest hook that stores `resolveBackend(request)` on `request.throttleBackend`. */
export function createBackendResolver (resolve: NonNullable<TraffikPluginOptions['resolveBackend']>) {
  return function resolveThrottleBackend (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    let chosen: ReturnType<typeof resolve>
    try {
      chosen = resolve(request)
    } catch (error) {
      done(error as Error)
      return
    }
    const apply = (backend: ThrottleBackend | null | undefined): void | Promise<void> => {
      if (backend === null || backend === undefined) return
      if (!(backend instanceof ThrottleBackend)) {
        invalidOption('resolveBackend', 'a function returning a ThrottleBackend (or null)', describeValue(backend))
      }
      request.throttleBackend = backend
      // A backend the plugin does not own is initialized on first use (concurrent requests share
      // one initialization). A closed one stays closed. A failure is not this request's error: the
      // throttle's backend call fails next, and its onError policy answers.
      if (!backend.initialized && !backend.closed) return backend.initialize().catch(() => {})
    }
    try {
      const result = then(chosen, apply)
      if (result instanceof Promise) result.then(() => { done() }, done)
      else done()
    } catch (error) {
      done(error as Error)
    }
  }
}
