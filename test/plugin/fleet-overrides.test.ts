/**
 * Fleet-wide overrides (`fastify.throttle.overrides`): what each override changes, its validation,
 * its lapse, and two app processes on one real Redis: an override set through one changes the
 * other's decisions within its refresh interval, while each decision stays one round trip.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { InMemoryBackend, RedisBackend, traffik, type ThrottleBackend, type TraffikPluginOptions } from '../../lib/index.js'
import { startRedis, uniqueNamespace } from '../../scripts/support/services.js'

async function buildApp (options: TraffikPluginOptions = {}, backend: ThrottleBackend = new InMemoryBackend()): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend, ...options })
  app.get('/r', { config: { rateLimit: { uid: 'api', rate: '2/min', identifier: (request) => String(request.headers['x-client']) } } }, async () => 'ok')
  app.get('/costly', { config: { rateLimit: { uid: 'costly', rate: '10/min', cost: 5 } } }, async () => 'ok')
  await app.ready()
  return app
}

async function statuses (app: FastifyInstance, client: string, count: number, url = '/r'): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) out.push((await app.inject({ url, headers: { 'x-client': client } })).statusCode)
  return out
}

t.test('a throttle override replaces its rate, cost, disabled and shadow until cleared', async (t) => {
  const app = await buildApp()
  t.teardown(async () => { await app.close() })
  const overrides = app.throttle.overrides!
  await overrides.set('api', { rate: '4/min' })
  t.same(await statuses(app, 'a', 5), [200, 200, 200, 200, 429], 'the overridden rate applies here at once')
  t.same(await overrides.get('api'), { rate: '4/min' }, 'get answers the stored values')
  t.equal(await overrides.clear('api'), 1, 'clear says how many went')
  t.same(await statuses(app, 'b', 3), [200, 200, 429], 'cleared: the configured 2/min again')
  t.equal(await overrides.get('api'), undefined)

  await overrides.set('costly', { cost: 1 })
  t.same((await app.inject('/costly')).headers['x-ratelimit-remaining'], '9', 'the cost override charges 1 instead of 5')
  await overrides.set('api', { disabled: true })
  t.same(await statuses(app, 'c', 4), [200, 200, 200, 200], 'disabled: not limited')
  t.ok(app.throttle.get('api')!.disabled, 'the throttle reports itself disabled')
  await overrides.set('api', { shadow: true })
  t.same(await statuses(app, 'd', 4), [200, 200, 200, 200], 'shadow: decided and charged, never rejected')
  t.ok(app.throttle.get('api')!.shadow)
  await overrides.clear('api')
  t.same(await statuses(app, 'd', 1), [429], 'the shadow decisions charged the counter: d is out once enforcing again')
  t.same((await overrides.list()).map((e) => e.uid), ['costly'], 'list: what is in force')
  t.equal(await overrides.clear(), 1, 'clear() removes every override')
})

t.test('an identifier override changes one client only', async (t) => {
  const app = await buildApp()
  t.teardown(async () => { await app.close() })
  const overrides = app.throttle.overrides!
  await overrides.set('api', { rate: '5/min' }, { identifier: 'gold' })
  await overrides.set('api', { disabled: true }, { identifier: 'internal' })
  t.same(await statuses(app, 'gold', 6), [200, 200, 200, 200, 200, 429], 'gold gets 5/min')
  t.same(await statuses(app, 'plain', 3), [200, 200, 429], 'everyone else keeps 2/min')
  t.same(await statuses(app, 'internal', 5), [200, 200, 200, 200, 200], 'a disabled client is not limited')
  await overrides.set('api', { rate: '3/min' })
  t.same(await statuses(app, 'other', 4), [200, 200, 200, 429], "the throttle's override applies to the others")
  t.same(await statuses(app, 'gold', 1), [429], "the client's own override wins over the throttle's")
  t.same(await overrides.get('api', { identifier: 'gold' }), { rate: '5/min' })
  t.equal(await overrides.clear('api', { identifier: 'gold' }), 1)
  t.same((await overrides.list()).map((e) => [e.uid, e.identifier]), [['api', 'internal'], ['api', undefined]])
})

t.test('overrides are validated like options, and lapse after ttlMs', async (t) => {
  const app = await buildApp()
  t.teardown(async () => { await app.close() })
  const overrides = app.throttle.overrides!
  await t.rejects(overrides.set('api', { rate: 'lots' }), { code: 'TRAFFIK_ERR_INVALID_RATE' })
  await t.rejects(overrides.set('api', { cost: -1 }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  await t.rejects(overrides.set('api', { limit: 5 } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /knows rate, cost, disabled, shadow/ })
  await t.rejects(overrides.set('api', { shadow: true }, { identifier: 'x' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /one identifier knows rate, cost, disabled/ })
  await t.rejects(overrides.set('', { rate: '1/s' }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  await t.rejects(overrides.set('api', { rate: '1/s' }, { ttlMs: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.same(await overrides.list(), [], 'nothing invalid was stored')
  for (const bad of [{ refreshMs: 0 }, { refreshMs: 1.5 }, { key: '' }, { refresh: 10 }, 'on']) {
    const fresh = Fastify()
    await t.rejects(async () => { await fresh.register(traffik, { overrides: bad as never }) }, { code: 'TRAFFIK_ERR_INVALID_OPTION' }, JSON.stringify(bad))
    await fresh.close().catch(() => {})
  }
  await overrides.set('api', { rate: '10/min' }, { ttlMs: 40 })
  t.same(await statuses(app, 'e', 3), [200, 200, 200], 'in force')
  await new Promise((resolve) => setTimeout(resolve, 80))
  await overrides.refresh()
  t.same(await overrides.list(), [], 'lapsed')
  t.same(await statuses(app, 'f', 3), [200, 200, 429], 'the configured rate again')
})

t.test('overrides: false leaves the registry without them', async (t) => {
  const app = await buildApp({ overrides: false })
  t.teardown(async () => { await app.close() })
  t.equal(app.throttle.overrides, undefined)
})

t.test('a record that is not ours is reported and kept, never overwritten', async (t) => {
  const backend = new InMemoryBackend()
  const app = await buildApp({}, backend)
  t.teardown(async () => { await app.close() })
  await backend.set('traffik:overrides', 'not json')
  await t.rejects(app.throttle.overrides!.set('api', { rate: '1/s' }), { code: 'TRAFFIK_ERR_BACKEND', message: /not JSON/ })
  t.equal(await backend.get('traffik:overrides'), 'not json', 'left as it was')
  await app.throttle.overrides!.refresh() // logged; the last overrides read stay in force
  t.same(await statuses(app, 'g', 3), [200, 200, 429])
  await backend.set('traffik:overrides', JSON.stringify({ v: 2 }))
  await t.rejects(app.throttle.overrides!.list(), { code: 'TRAFFIK_ERR_BACKEND', message: /unknown shape/ })
  t.equal(await app.throttle.overrides!.clear(), 0, 'clear() starts over from an unreadable record')
})

t.test('two app processes on one Redis: an override set through one reaches the other within refreshMs, one round trip per decision', async (t) => {
  const redis = await startRedis()
  const url = `redis://${redis.host}:${redis.port}`
  const namespace = uniqueNamespace('ovr')
  const refreshMs = 200
  const child = fork(fileURLToPath(new URL('../helpers/overrides-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, REDIS_URL: url, NAMESPACE: namespace, OVERRIDES_REFRESH_MS: String(refreshMs) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const [{ port }] = await once(child, 'message') as [{ port: number }]
  const admin = new Redis(url)
  const app = await buildApp({ overrides: { refreshMs } }, new RedisBackend(url, { namespace }))
  t.teardown(async () => {
    await app.close()
    child.disconnect()
    admin.disconnect()
    await redis.stop()
  })
  const other = async (client: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}/r`, { headers: { 'x-client': client } })).status

  t.same([await other('p'), await other('p')], [200, 429], 'the other process enforces its 1/min')
  const setAt = Date.now()
  await app.throttle.overrides!.set('api', { rate: '100/min' })
  let waitedMs = 0
  while (await other('p') === 429) {
    waitedMs = Date.now() - setAt
    t.ok(waitedMs < 20 * refreshMs, 'the override arrives (a bound against hanging, not a timing check)')
    if (waitedMs >= 20 * refreshMs) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.comment(`the other process applied the override ${Date.now() - setAt} ms after it was set (refreshMs ${refreshMs})`)
  t.pass('the other process admits p again under the overridden 100/min')

  // Round trips: the decisions of both processes are one script call each; the overrides cost
  // each process one GET per refreshMs, not per decision.
  const stats = async (): Promise<Map<string, number>> => {
    const info = await admin.info('commandstats')
    return new Map([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]))
  }
  const before = await stats()
  const started = Date.now()
  const decisions = 40
  for (let i = 0; i < decisions / 2; i++) {
    await app.inject({ url: '/r', headers: { 'x-client': `q${i}` } })
    await other(`q${i}`)
  }
  const elapsed = Date.now() - started
  const after = await stats()
  const calls = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0)
  t.equal(calls('evalsha') + calls('eval'), decisions, 'one script call per decision')
  // commandstats counts the commands a script runs too: each decision's script reads its state
  // with one GET (see redis-strategies.test.ts), so the GETs beyond those are the override reads.
  const reads = calls('get') - decisions
  const readBound = 2 * (Math.ceil(elapsed / refreshMs) + 1)
  t.ok(reads <= readBound, `overrides read ${reads} times in ${elapsed} ms by two processes (at most ${readBound}), not per decision`)
  t.comment(`${decisions} decisions: ${calls('evalsha') + calls('eval')} script calls, ${reads} override reads in ${elapsed} ms`)
})
