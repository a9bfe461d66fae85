/**
 * The app under load in the chaos suite: one Fastify process listening on 127.0.0.1, limited by a
 * Redis or memcached backend the parent kills, hangs and restarts. Routes:
 * `/allow`, `/throttle`, `/raise` (one onError policy each, generous limits), `/tight` (5/min,
 * 'raise', to prove limits apply again), `/failover` (failover to an InMemoryBackend behind a
 * CircuitBreaker; the `x-breaker` response header tells which state answered).
 *
 * Reports over IPC: its port, every unhandled rejection or uncaught exception, and, after
 * `app.close()`, the resources still active (the IPC channel and stdio aside). Then it leaves the
 * IPC channel and must exit by itself: nothing may keep it alive.
 */
import Fastify from 'fastify'
import {
  CircuitBreaker, InMemoryBackend, MemcachedBackend, RedisBackend, failover, traffik, type ThrottleBackend
} from '../../lib/index.js'

export interface ChaosAppSetup {
  kind: 'redis' | 'memcached'
  /** `redis://...` or `host:port`. */
  address: string
  namespace: string
  timeoutMs: number
  breaker: { failureThreshold: number, recoveryTimeMs: number }
}

export type WorkerMessage =
  | { type: 'listening', port: number }
  | { type: 'unhandled', reason: string }
  | { type: 'closed', resources: string[] }

const setup = JSON.parse(process.env.TRAFFIK_CHAOS_APP ?? '{}') as ChaosAppSetup
const report = (message: WorkerMessage): void => { process.send?.(message) }

process.on('unhandledRejection', (reason) => { report({ type: 'unhandled', reason: String((reason as Error)?.stack ?? reason) }) })
process.on('uncaughtException', (error) => { report({ type: 'unhandled', reason: `uncaught: ${error.stack ?? String(error)}` }) })

async function main (): Promise<void> {
  const backend: ThrottleBackend = setup.kind === 'redis'
    ? new RedisBackend(setup.address, { namespace: setup.namespace, timeoutMs: setup.timeoutMs })
    : new MemcachedBackend(setup.address, { namespace: setup.namespace, timeoutMs: setup.timeoutMs })
  const fallback = new InMemoryBackend()
  const breaker = new CircuitBreaker({ ...setup.breaker, halfOpenProbes: 1 })
  const app = Fastify()
  await app.register(traffik, {
    backend,
    backends: [fallback],
    defaults: { identifier: (request) => String(request.headers['x-client'] ?? 'anonymous') }
  })
  app.setErrorHandler((error: Error & { statusCode?: number, code?: string }, _request, reply) => {
    reply.code(error.statusCode ?? 500).send({ statusCode: error.statusCode ?? 500, code: error.code })
  })
  // Time spent in this process, limiter included: what the plugin answers for, free of the
  // load generator's own scheduling delays.
  const receivedAt = new WeakMap<object, number>()
  app.addHook('onRequest', async (request) => { receivedAt.set(request, performance.now()) })
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-elapsed-ms', (performance.now() - (receivedAt.get(request) ?? performance.now())).toFixed(1))
    if (request.url === '/failover') reply.header('x-breaker', breaker.state)
  })
  const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })
  for (const onError of ['allow', 'throttle', 'raise'] as const) {
    app.get(`/${onError}`, { config: { rateLimit: { rate: '100000/min', onError } } }, ok)
  }
  app.get('/tight', { config: { rateLimit: { rate: '5/min', onError: 'raise' } } }, ok)
  app.get('/failover', { config: { rateLimit: { rate: '100000/min', onError: failover({ backend: fallback, breaker }) } } }, ok)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  report({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })

  process.on('message', (message) => {
    if (message !== 'close') return
    app.close().then(async () => {
      // Let pending socket closes and cleared timers settle before looking.
      await new Promise((resolve) => setTimeout(resolve, 200))
      const resources = process.getActiveResourcesInfo().filter((kind) => kind !== 'PipeWrap' && kind !== 'TTYWrap')
      // The look itself (the timer above) is over; what remains was left by the app.
      report({ type: 'closed', resources })
      process.disconnect()
    })
  })
}

main().catch((error: unknown) => {
  report({ type: 'unhandled', reason: `startup: ${String((error as Error)?.stack ?? error)}` })
  process.exit(1)
})
