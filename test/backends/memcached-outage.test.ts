/**
 * MemcachedBackend when memcached goes away: decisions fail within timeoutMs (plus a margin) as
 * BackendError, each onError policy answers (allow → 200, throttle → 429, raise → 5xx), a hung
 * server (SIGSTOP) hits the deadline instead of hanging requests, and the same app recovers on its
 * own once memcached is back on the same port. Any unhandled rejection fails the test.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { FixedWindow, MemcachedBackend, TokenBucket, traffik } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import { startMemcached, uniqueNamespace, type RunningServer } from '../../scripts/support/services.js'
import { stallMeter } from '../helpers/loop-stall.js'
import { roomInWindow } from '../helpers/window-room.js'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
process.on('unhandledRejection', onUnhandled)
t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

const TIMEOUT_MS = 250
const MARGIN_MS = 250
// Bounds add this process' worst stall since the measurement began (test/helpers/loop-stall.ts).
const loopDelay = stallMeter()
/** The latest an answer may come: the deadline, a margin, and this process' worst stall. */
function bound (): number {
  return TIMEOUT_MS + MARGIN_MS + loopDelay.stallMs()
}
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function appWith (t: Test, backend: MemcachedBackend): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend, defaults: { identifier: () => 'client', rate: '1000/min' } })
  for (const onError of ['allow', 'throttle', 'raise'] as const) {
    app.get(`/${onError}`, { config: { rateLimit: { onError } } }, async () => ({ ok: true }))
    app.get(`/${onError}-bucket`, { config: { rateLimit: { onError, strategy: new TokenBucket() } } }, async () => ({ ok: true }))
  }
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

/** Status of every route, and how long the slowest took. */
async function statuses (app: FastifyInstance): Promise<{ codes: Record<string, number>, slowestMs: number }> {
  const codes: Record<string, number> = {}
  let slowestMs = 0
  loopDelay.reset()
  for (const path of ['allow', 'throttle', 'raise', 'allow-bucket', 'throttle-bucket', 'raise-bucket']) {
    const started = performance.now()
    const reply = await app.inject(`/${path}`)
    slowestMs = Math.max(slowestMs, performance.now() - started)
    codes[path] = reply.statusCode
  }
  return { codes, slowestMs }
}

const HEALTHY = { allow: 200, throttle: 200, raise: 200, 'allow-bucket': 200, 'throttle-bucket': 200, 'raise-bucket': 200 }

async function expectOutage (t: Test, app: FastifyInstance, backend: MemcachedBackend, label: string): Promise<void> {
  const { codes, slowestMs } = await statuses(app)
  t.equal(codes.allow, 200, `${label}: onError allow → 200`)
  t.equal(codes['allow-bucket'], 200)
  t.equal(codes.throttle, 429, `${label}: onError throttle → 429`)
  t.equal(codes['throttle-bucket'], 429)
  t.ok(codes.raise! >= 500 && codes['raise-bucket']! >= 500, `${label}: onError raise → 5xx (${codes.raise}, ${codes['raise-bucket']})`)
  const slowestBound = bound()
  t.ok(slowestMs < slowestBound, `${label}: every request answered within timeoutMs + margin + this process' stalls (slowest ${Math.round(slowestMs)} ms, bound ${Math.round(slowestBound)} ms)`)

  const op: EvaluateOp = { strategy: new FixedWindow(), key: 'direct:{c}', limit: 5, windowMs: 60_000, cost: 1 }
  loopDelay.reset()
  const started = performance.now()
  await t.rejects(backend.evaluate([op], 'hit'), { code: /^TRAFFIK_ERR_BACKEND/ }, `${label}: evaluate fails with a BackendError`)
  t.ok(performance.now() - started < bound(), `${label}: within the deadline`)
  const health = await backend.healthCheck()
  t.equal(health.healthy, false, `${label}: healthCheck reports the failure`)
}

async function expectRecovery (t: Test, app: FastifyInstance, backend: MemcachedBackend, label: string): Promise<void> {
  // The first request after the restart may still meet the socket that died; give it two seconds.
  let codes: Record<string, number> = {}
  const deadline = Date.now() + 2000
  while (Date.now() < deadline) {
    codes = (await statuses(app)).codes
    if (Object.values(codes).every((c) => c === 200)) break
    await sleep(50)
  }
  t.same(codes, HEALTHY, `${label}: recovered without restarting the app`)
  t.equal((await backend.healthCheck()).healthy, true)
}

t.test('memcached stopped and restarted on the same port', async (t) => {
  let server: RunningServer = await startMemcached()
  const port = server.port
  t.teardown(async () => { await server.stop() })
  const backend = new MemcachedBackend(`${server.host}:${port}`, { namespace: uniqueNamespace('out'), timeoutMs: TIMEOUT_MS })
  const app = await appWith(t, backend)
  t.same((await statuses(app)).codes, HEALTHY, 'healthy at first')

  await server.stop()
  await expectOutage(t, app, backend, 'stopped')
  await expectOutage(t, app, backend, 'still stopped')

  server = await startMemcached({ port })
  await expectRecovery(t, app, backend, 'restarted')
})

t.test('a hung memcached (SIGSTOP): the deadline answers, and SIGCONT recovers', async (t) => {
  const server = await startMemcached()
  t.teardown(async () => { await server.stop() })
  const backend = new MemcachedBackend(`${server.host}:${server.port}`, { namespace: uniqueNamespace('hang'), timeoutMs: TIMEOUT_MS })
  const app = await appWith(t, backend)
  t.same((await statuses(app)).codes, HEALTHY)

  // Resolves only once memcached verifiably answers nothing: kill() returns before its worker
  // threads have stopped, and a request they still answer is rightly decided (200).
  await server.pause()
  try {
    await expectOutage(t, app, backend, 'hung')
    // Steady traffic against the hung server: every request still gets its answer in time.
    loopDelay.reset()
    const started = performance.now()
    const replies = await Promise.all(Array.from({ length: 30 }, async () => await app.inject('/throttle')))
    t.ok(replies.every((r) => r.statusCode === 429), 'concurrent requests all fail closed')
    t.ok(performance.now() - started < TIMEOUT_MS + bound(), `concurrent requests answered in time (${Math.round(performance.now() - started)} ms)`)
  } finally {
    await server.resume()
  }
  await expectRecovery(t, app, backend, 'continued')
})

t.test('a charge that lands after its decision timed out is given back', async (t) => {
  const server = await startMemcached()
  t.teardown(async () => { await server.stop() })
  const backend = new MemcachedBackend(`${server.host}:${server.port}`, { namespace: uniqueNamespace('late'), timeoutMs: 200 })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  for (const strategy of [new FixedWindow(), new TokenBucket()]) {
    const op: EvaluateOp = { strategy, key: `late-${strategy.name}:{c}`, limit: 5, windowMs: 60_000, cost: 1 }
    // The charge and the check below must fall in one fixed window (this takes about 0.5 s).
    await roomInWindow(op.windowMs, 5000)
    await backend.evaluate([op], 'hit')
    await server.pause()
    const late = backend.evaluate([op], 'hit')
    await t.rejects(late, { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' }, `${strategy.name}: the decision times out`)
    // memcached wakes up before the watchdog (2 × timeoutMs) drops the connection, and applies the charge.
    await server.resume()
    await sleep(150)
    const [after] = await backend.evaluate([{ ...op, cost: 0 }], 'check')
    t.equal(after!.remaining, 4, `${strategy.name}: only the answered request is charged`)
  }
})

t.test('a memcached that was never reachable fails the start with its cause, unless the backend may start degraded', async (t) => {
  const strict = new MemcachedBackend('127.0.0.1:1', { namespace: uniqueNamespace('never'), timeoutMs: TIMEOUT_MS })
  const app = Fastify()
  await app.register(traffik, { backend: strict })
  t.teardown(async () => { await app.close() })
  await t.rejects(async () => { await app.ready() }, { code: 'TRAFFIK_ERR_BACKEND', message: /could not connect to memcached at 127\.0\.0\.1:1: .*connection refused/ }, 'app.ready() rejects, naming the refusal')

  const degraded = new MemcachedBackend('127.0.0.1:1', { namespace: uniqueNamespace('never'), timeoutMs: TIMEOUT_MS, startup: 'degraded' })
  const started = await appWith(t, degraded)
  const { codes } = await statuses(started)
  t.same([codes.allow, codes.throttle], [200, 429], 'onError decides from the first request on')
  await t.rejects(degraded.get('k'), { code: 'TRAFFIK_ERR_BACKEND_UNAVAILABLE' }, 'calls fail at once while it is not connected')
})

t.test('no unhandled rejections during outages and recoveries', async (t) => {
  await sleep(300) // late answers and background generation refreshes have settled
  t.same(unhandled, [])
})
