/**
 * Degraded start, on real servers: with `startup: 'degraded'` an app boots while its Redis or
 * memcached is down (nothing listens on the port), answers by `onError` at once (the coded
 * TRAFFIK_ERR_BACKEND_UNAVAILABLE, never after a connect timeout), and once the server starts on
 * that port the backend takes over by itself and limits apply. The same for a per-tenant backend
 * returned by `resolveBackend`. The app's log (a pino destination) shows each transition once:
 * degraded, recovered, and, when the server stops again, down and recovered.
 * The default stays loud: an unreachable backend makes `app.ready()` reject with a coded error.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { MemcachedBackend, RedisBackend, traffik, type ThrottleBackend, type TraffikPluginOptions } from '../../lib/index.js'
import { freePort, startMemcached, startRedis, uniqueNamespace, type RunningServer } from '../../scripts/support/services.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface LogLine { level: number, msg: string, backend?: string, err?: { message: string } }

/** An app whose log lines are kept (pino writes one JSON line per record to the stream). */
async function appWith (t: Test, options: TraffikPluginOptions): Promise<{ app: FastifyInstance, logs: LogLine[] }> {
  const logs: LogLine[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line) as LogLine) } } } })
  await app.register(traffik, { ...options, defaults: { identifier: () => 'client', rate: '3/min', dynamicBackend: options.resolveBackend !== undefined, ...options.defaults } })
  app.get('/allow', { config: { rateLimit: { onError: 'allow' } } }, async () => ({ ok: true }))
  app.get('/throttle', { config: { rateLimit: { onError: 'throttle' } } }, async () => ({ ok: true }))
  app.get('/raise', { config: { rateLimit: { onError: 'raise' } } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  return { app, logs }
}

/** The transition lines of the log, by kind. */
function transitions (logs: LogLine[]): Record<'degraded' | 'down' | 'recovered', LogLine[]> {
  const mine = logs.filter((line) => line.msg.startsWith('fastify-traffik: backend'))
  return {
    degraded: mine.filter((line) => line.msg.includes('could not connect at start')),
    down: mine.filter((line) => line.msg.includes(' is down')),
    recovered: mine.filter((line) => line.msg.includes('recovered after'))
  }
}

/** While the backend is away: every onError policy answers, and the error is the immediate "not connected yet". */
async function expectOnErrorAnswers (t: Test, app: FastifyInstance, code: RegExp, label: string): Promise<void> {
  const allowed = await app.inject('/allow')
  t.equal(allowed.statusCode, 200, `${label}: onError 'allow' → 200`)
  t.equal(allowed.headers['x-ratelimit-limit'], undefined, `${label}: decided by onError, not by a limit`)
  t.equal((await app.inject('/throttle')).statusCode, 429, `${label}: onError 'throttle' → 429`)
  const raised = await app.inject('/raise')
  t.equal(raised.statusCode, 503, `${label}: onError 'raise' → 503`)
  t.match(raised.json().code, code, `${label}: ${raised.json().message}`)
}

/**
 * Polls until the backend decides again (the 'raise' route stops answering 503), and says how long
 * that took after the server was up. The limit is then exact: 3 per minute, the fourth refused.
 */
async function expectLimitsApply (t: Test, app: FastifyInstance, serverUpAt: number, label: string): Promise<void> {
  const giveUpAt = Date.now() + 10_000
  let status = 503
  while (Date.now() < giveUpAt) {
    status = (await app.inject('/raise')).statusCode
    if (status !== 503) break
    await sleep(20)
  }
  t.equal(status, 200, `${label}: the backend took over`)
  t.comment(`${label}: limits apply ${Math.round(performance.now() - serverUpAt)} ms after the server answers`)
  const rest = []
  for (let i = 0; i < 3; i++) rest.push((await app.inject('/raise')).statusCode)
  t.same(rest, [200, 200, 429], `${label}: the limit applies (3/min: two more allowed, then 429)`)
}

t.test('Redis down at boot: the app starts, onError answers at once, Redis starts, limits apply; each transition logged once', async (t) => {
  const port = await freePort()
  const backend = new RedisBackend(`redis://127.0.0.1:${port}`, { namespace: uniqueNamespace('deg'), startup: 'degraded', connectTimeoutMs: 1000 })
  const { app, logs } = await appWith(t, { backend })
  await app.ready()
  t.equal(backend.state, 'degraded', 'the app is ready, the backend degraded')
  await expectOnErrorAnswers(t, app, /^TRAFFIK_ERR_BACKEND_UNAVAILABLE$/, 'degraded')
  await expectOnErrorAnswers(t, app, /^TRAFFIK_ERR_BACKEND_UNAVAILABLE$/, 'still degraded')

  let server: RunningServer = await startRedis({ port })
  t.teardown(async () => { await server.stop() })
  await expectLimitsApply(t, app, performance.now(), 'Redis started')
  t.equal(backend.state, 'up')

  // A later outage: down once, however many requests fail, then recovered once.
  await server.stop()
  for (let i = 0; i < 5; i++) await expectOnErrorAnswers(t, app, /^TRAFFIK_ERR_BACKEND/, 'stopped')
  t.equal(backend.state, 'down')
  server = await startRedis({ port })
  const giveUpAt = Date.now() + 10_000
  while (Date.now() < giveUpAt && (await app.inject('/raise')).statusCode === 503) await sleep(20)
  t.equal(backend.state, 'up', 'recovered after the restart')

  const seen = transitions(logs)
  t.equal(seen.degraded.length, 1, 'degraded: logged once')
  t.equal(seen.degraded[0]?.level, 50, 'at error level: limits fail closed by default, so every limited request gets 429')
  t.match(seen.degraded[0]?.err?.message, /Redis/, 'with the connection error')
  t.equal(seen.down.length, 1, 'down: logged once for many failed requests')
  t.equal(seen.recovered.length, 2, 'recovered: once after the start, once after the restart')
  t.ok(seen.recovered.every((line) => line.level === 30), 'recoveries at info level')
})

t.test('memcached down at boot: the same degraded start, recovery and logs', async (t) => {
  const port = await freePort()
  const backend = new MemcachedBackend(`127.0.0.1:${port}`, { namespace: uniqueNamespace('deg'), startup: 'degraded' })
  const { app, logs } = await appWith(t, { backend, defaults: { onError: 'allow' } })
  await app.ready()
  t.equal(backend.state, 'degraded')
  await expectOnErrorAnswers(t, app, /^TRAFFIK_ERR_BACKEND_UNAVAILABLE$/, 'degraded')
  // Until the first attempt has failed (it may outlast the start's wait on a busy machine), the
  // message says it is still trying; then it names the cause.
  let message = ''
  const causeBy = Date.now() + 5000
  while (!/connection refused/.test(message) && Date.now() < causeBy) {
    message = (await app.inject('/raise')).json().message
    await sleep(20)
  }
  t.match(message, /not connected yet .*connection refused/, 'the message names the cause')

  let server: RunningServer = await startMemcached({ port })
  t.teardown(async () => { await server.stop() })
  await expectLimitsApply(t, app, performance.now(), 'memcached started')

  await server.stop()
  for (let i = 0; i < 5; i++) await expectOnErrorAnswers(t, app, /^TRAFFIK_ERR_BACKEND/, 'stopped')
  server = await startMemcached({ port })
  const giveUpAt = Date.now() + 10_000
  while (Date.now() < giveUpAt && (await app.inject('/raise')).statusCode === 503) await sleep(20)
  t.equal(backend.state, 'up')

  const seen = transitions(logs)
  t.equal(seen.degraded.length, 1, 'degraded: logged once')
  t.equal(seen.degraded[0]?.level, 40, "at warn level: with onError 'allow' requests still pass")
  t.equal(seen.down.length, 1, 'down: logged once')
  t.equal(seen.recovered.length, 2, 'recovered: twice (after the start, after the restart)')
})

t.test('a tenant backend resolved per request answers by onError within its deadline, then takes over', async (t) => {
  const port = await freePort()
  // Not listed in `backends`: started on first use, degraded, whatever its own startup option.
  const tenant = new RedisBackend(`redis://127.0.0.1:${port}`, { namespace: uniqueNamespace('tenant'), timeoutMs: 250, connectTimeoutMs: 5000 })
  t.teardown(async () => { await tenant.close() })
  const { app, logs } = await appWith(t, { resolveBackend: () => tenant })
  await app.ready()
  const first = await app.inject('/raise')
  t.equal(first.statusCode, 503)
  t.equal(first.json().code, 'TRAFFIK_ERR_BACKEND_UNAVAILABLE', 'the first request waited at most the deadline, not the 5 s connect timeout')
  t.equal(tenant.state, 'degraded')
  await expectOnErrorAnswers(t, app, /^TRAFFIK_ERR_BACKEND_UNAVAILABLE$/, 'tenant degraded')

  const server = await startRedis({ port })
  t.teardown(async () => { await server.stop() })
  await expectLimitsApply(t, app, performance.now(), 'tenant Redis started')

  const seen = transitions(logs)
  t.equal(seen.degraded.length, 1, 'the tenant backend: degraded logged once')
  t.equal(seen.recovered.length, 1, 'recovered logged once')
})

t.test('closing an app whose backend is still connecting (a hung Redis) lets go of the connection and leaves nothing behind', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  await server.pause()
  const resources = (): Map<string, number> => {
    const counts = new Map<string, number>()
    for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1)
    return counts
  }
  const baseline = resources()
  const backend = new RedisBackend(`redis://127.0.0.1:${server.port}`, { namespace: uniqueNamespace('hung'), startup: 'degraded', connectTimeoutMs: 20_000 })
  const app = Fastify()
  await app.register(traffik, { backend })
  await app.ready()
  t.equal(backend.state, 'degraded', 'started while the first attempt still waits on the hung server')
  const started = performance.now()
  await app.close()
  t.comment(`app.close() took ${Math.round(performance.now() - started)} ms (connectTimeoutMs is 20 000)`)
  t.equal(backend.state, 'closed')
  let extra: string[] = []
  for (let i = 0; i < 40; i++) {
    await sleep(50)
    const now = resources()
    extra = [...now].filter(([kind, n]) => n > (baseline.get(kind) ?? 0)).map(([kind, n]) => `${kind} x${n - (baseline.get(kind) ?? 0)}`)
    if (extra.length === 0) break
  }
  t.same(extra, [], 'no socket or timer of the attempt is left')
  await server.resume()
})

t.test('the default stays loud: an unreachable backend makes app.ready() reject with a coded error', async (t) => {
  const port = await freePort()
  for (const backend of [
    new MemcachedBackend(`127.0.0.1:${port}`, { namespace: uniqueNamespace('loud') }),
    new RedisBackend(`redis://127.0.0.1:${port}`, { namespace: uniqueNamespace('loud'), connectTimeoutMs: 300 })
  ] as ThrottleBackend[]) {
    const { app } = await appWith(t, { backend })
    await t.rejects(async () => { await app.ready() }, { code: 'TRAFFIK_ERR_BACKEND' }, `${backend.name}: app.ready() rejects`)
    t.equal(backend.initialized, false)
  }
})

t.test("startup: 'on-error' starts degraded when defaults.onError lets requests through, loud when it fails closed", async (t) => {
  const port = await freePort()
  const open = new MemcachedBackend(`127.0.0.1:${port}`, { namespace: uniqueNamespace('oe') })
  const { app: openApp } = await appWith(t, { backend: open, startup: 'on-error', defaults: { onError: 'allow' } })
  await openApp.ready()
  t.equal(open.state, 'degraded', "onError 'allow': degraded")

  const closed = new MemcachedBackend(`127.0.0.1:${port}`, { namespace: uniqueNamespace('oe') })
  const { app: closedApp } = await appWith(t, { backend: closed, startup: 'on-error' })
  await t.rejects(async () => { await closedApp.ready() }, { code: 'TRAFFIK_ERR_BACKEND' }, "onError 'throttle' (the default): required")

  // A backend's own startup wins over the plugin's.
  const own = new MemcachedBackend(`127.0.0.1:${port}`, { namespace: uniqueNamespace('oe'), startup: 'required' })
  const { app: ownApp } = await appWith(t, { backend: own, startup: 'degraded' })
  await t.rejects(async () => { await ownApp.ready() }, { code: 'TRAFFIK_ERR_BACKEND' }, "the backend's startup: 'required' wins")
})

t.test('bad startup values are coded errors at construction and registration', async (t) => {
  t.throws(() => new MemcachedBackend('127.0.0.1:11211', { startup: 'lazy' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /startup/ })
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  app.register(traffik, { startup: 'sometimes' as never })
  await t.rejects(async () => { await app.ready() }, { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /startup/ })
  const backend = new MemcachedBackend('127.0.0.1:11211')
  await t.rejects(backend.start('eventually' as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})
