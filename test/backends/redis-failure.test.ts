/**
 * Failure behaviour of RedisBackend against real, misbehaving servers: a hung (SIGSTOPped) Redis
 * makes decisions fail within `timeoutMs` with TRAFFIK_ERR_BACKEND_TIMEOUT, the throttle's
 * `onError` answers, and service comes back by itself after SIGCONT; a Redis that is stopped
 * and started again on the same port is reconnected to; no rejection goes unhandled.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { FixedWindow, RedisBackend, traffik } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import { startRedis, uniqueNamespace, type RunningServer } from '../../scripts/support/services.js'
import { stallMeter } from '../helpers/loop-stall.js'

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => { unhandled.push(reason) })

const op: EvaluateOp = { strategy: new FixedWindow(), key: 'route:{client}', limit: 1000, windowMs: 60_000, cost: 1 }
const TIMEOUT_MS = 150
const MARGIN_MS = 250

// Bounds add this process' worst stall since the measurement began (test/helpers/loop-stall.ts).
const loopDelay = stallMeter()
/** The latest an answer may come: the deadline, a margin, and this process' worst stall. */
function bound (): number {
  return TIMEOUT_MS + MARGIN_MS + loopDelay.stallMs()
}

async function timed<T> (pending: Promise<T>): Promise<{ ms: number, value?: T, error?: Error & { code?: string } }> {
  const started = Date.now()
  try {
    const value = await pending
    return { ms: Date.now() - started, value }
  } catch (error) {
    return { ms: Date.now() - started, error: error as Error & { code?: string } }
  }
}

/** Polls `evaluate` until it succeeds; resolves how long that took. */
async function recovery (backend: RedisBackend, withinMs: number): Promise<number> {
  const started = Date.now()
  for (;;) {
    try {
      await backend.evaluate([op], 'hit')
      return Date.now() - started
    } catch (error) {
      if (Date.now() - started > withinMs) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

async function appWithPolicies (backend: RedisBackend): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend })
  for (const onError of ['allow', 'throttle', 'raise'] as const) {
    app.get(`/${onError}`, { config: { rateLimit: { rate: '100/min', onError, identifier: () => 'client' } } }, async () => ({ ok: true }))
  }
  await app.ready()
  return app
}

t.test('a hung Redis (SIGSTOP): decisions fail within timeoutMs, onError answers, SIGCONT recovers', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const backend = new RedisBackend(`redis://${server.host}:${server.port}`, { namespace: uniqueNamespace(), timeoutMs: TIMEOUT_MS })
  const app = await appWithPolicies(backend)
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject('/allow')).statusCode, 200, 'healthy first')

  // Resolves only once Redis verifiably answers nothing (kill() returns before the process has stopped).
  await server.pause()
  try {
    loopDelay.reset()
    const first = await timed(backend.evaluate([op], 'hit'))
    t.equal(first.error?.code, 'TRAFFIK_ERR_BACKEND_TIMEOUT', 'the deadline answers')
    t.ok(first.ms >= TIMEOUT_MS - 5 && first.ms < bound(), `failed after ${first.ms} ms`)

    const policies = await Promise.all(['allow', 'throttle', 'raise'].map(async (path) => await timed(app.inject(`/${path}`))))
    const [allow, throttle, raise] = policies
    t.equal(allow!.value?.statusCode, 200, "onError 'allow' lets the request through")
    t.equal(throttle!.value?.statusCode, 429, "onError 'throttle' rejects it")
    t.ok(raise!.value!.statusCode >= 500, `onError 'raise' fails it (${raise!.value!.statusCode})`)
    t.match(raise!.value!.json(), { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' })
    for (const p of policies) t.ok(p.ms < bound(), `answered in ${p.ms} ms`)

    // A long hang: every call still answers in time, and the hung connection is dropped
    // (socketTimeout) so calls stop queueing behind it.
    const during: number[] = []
    const codes = new Set<string | undefined>()
    loopDelay.reset()
    const until = Date.now() + 1500
    while (Date.now() < until) {
      const attempt = await timed(backend.evaluate([op], 'hit'))
      codes.add(attempt.error?.code)
      during.push(attempt.ms)
    }
    t.same([...codes].filter((code) => !/^TRAFFIK_ERR_BACKEND/.test(code ?? '')), [], `every call failed with a backend error (${[...codes].join(', ')})`)
    t.ok(Math.max(...during) < bound(), `slowest of ${during.length} answers during the hang: ${Math.max(...during)} ms (bound ${Math.round(bound())} ms)`)
    // socketTimeout fires once the connection has been silent that long after its last write; on a
    // loaded machine the last timed-out writes can push it just past the loop, so wait (bounded).
    const dropBy = Date.now() + 3000
    while ((backend.client as { status: string }).status === 'ready' && Date.now() < dropBy) await new Promise((resolve) => setTimeout(resolve, 20))
    t.not((backend.client as { status: string }).status, 'ready', 'the hung connection was dropped')
    const fast = await timed(backend.evaluate([op], 'hit'))
    t.equal(fast.error?.code, 'TRAFFIK_ERR_BACKEND', 'with the connection down, calls fail before the deadline, not by it')
    t.ok(fast.ms < TIMEOUT_MS + loopDelay.stallMs(), `in ${fast.ms} ms`)
    t.equal((await backend.healthCheck()).healthy, false)
  } finally {
    await server.resume()
  }
  const took = await recovery(backend, 5000)
  t.ok(took < 5000, `recovered ${took} ms after SIGCONT`)
  t.equal((await app.inject('/raise')).statusCode, 200)
  t.equal((await backend.healthCheck()).healthy, true)
})

t.test('a Redis stopped and started again on the same port: fast failures, then recovery', async (t) => {
  let server: RunningServer = await startRedis()
  const port = server.port
  t.teardown(async () => { await server.stop() })
  const backend = new RedisBackend(`redis://${server.host}:${port}`, { namespace: uniqueNamespace(), timeoutMs: TIMEOUT_MS })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  t.match(await backend.evaluate([op], 'hit'), [{ allowed: true }])
  const app = await appWithPolicies(new RedisBackend(`redis://${server.host}:${port}`, { namespace: uniqueNamespace(), timeoutMs: TIMEOUT_MS }))
  t.teardown(async () => { await app.close() })

  await server.stop()
  loopDelay.reset()
  const down = await timed(backend.evaluate([op], 'hit'))
  t.equal(down.error?.code, 'TRAFFIK_ERR_BACKEND', `fails at once while down: ${down.error?.message}`)
  t.ok(down.ms < TIMEOUT_MS + loopDelay.stallMs(), `in ${down.ms} ms`)
  t.equal((await app.inject('/allow')).statusCode, 200)
  t.equal((await app.inject('/throttle')).statusCode, 429)

  server = await startRedis({ port })
  const took = await recovery(backend, 5000)
  t.ok(took < 5000, `reconnected ${took} ms after the restart`)
  const [decision] = await backend.evaluate([op], 'hit')
  t.equal(decision!.remaining, op.limit - 2, 'a fresh server starts a fresh count')
})

t.test('a client passed in with its offline queue on still never holds a call past timeoutMs', async (t) => {
  const { Redis } = await import('ioredis')
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const client = new Redis(server.port, server.host) // ioredis defaults: offline queue, 20 retries
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const backend = new RedisBackend(client, { namespace: uniqueNamespace(), timeoutMs: TIMEOUT_MS })
  await backend.initialize()
  await server.pause()
  try {
    loopDelay.reset()
    const hung = await timed(backend.evaluate([op], 'hit'))
    t.equal(hung.error?.code, 'TRAFFIK_ERR_BACKEND_TIMEOUT')
    t.ok(hung.ms < bound(), `${hung.ms} ms`)
  } finally {
    await server.resume()
  }
  await recovery(backend, 5000)
  await server.stop()
  loopDelay.reset()
  const down = await timed(backend.evaluate([op], 'hit'))
  t.match(down.error, { code: /^TRAFFIK_ERR_BACKEND/ })
  t.ok(down.ms < bound(), `nothing waits in the offline queue (${down.ms} ms)`)
  await backend.close()
  t.equal(client.status !== 'end', true, 'the user\'s client is not closed by the backend')
})

t.test('no unhandled rejections', async (t) => {
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(unhandled.map(String), [])
})
