/**
 * `fastify.throttle.health()`: every owned backend's probe, each under a deadline, in one plain
 * JSON answer for a readiness route. A real memcached answers; a custom backend that hangs
 * without a deadline of its own is cut off by health's; a degraded backend says so.
 */
import Fastify from 'fastify'
import t from 'tap'
import { InMemoryBackend, MemcachedBackend, traffik } from '../../lib/index.js'
import { freePort, sharedMemcachedServers, uniqueNamespace } from '../../scripts/support/services.js'
import { CommandedBackend } from '../reliability/commanded-backend.js'

t.test('health() answers ok while every owned backend answers, and names the one that does not', async (t) => {
  const memory = new InMemoryBackend()
  const memcached = new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace('health') })
  // No deadline of its own (timeoutMs 0): only health's deadline stops its probe.
  const custom = new CommandedBackend({ timeoutMs: 0, namespace: 'custom' })
  const app = Fastify()
  await app.register(traffik, { backend: memory, backends: [memcached, custom] })
  app.get('/ready', async (_request, reply) => {
    const health = await app.throttle.health({ timeoutMs: 200 })
    return await reply.code(health.ok ? 200 : 503).send(health)
  })
  t.teardown(async () => { await app.close() })
  await app.ready()

  const healthy = await app.inject('/ready')
  t.equal(healthy.statusCode, 200)
  const body = healthy.json()
  t.equal(body.ok, true)
  t.same(body.backends.map((b: { name: string }) => b.name), ['InMemoryBackend', 'MemcachedBackend', 'CommandedBackend'], 'the default backend first, then backends in order')
  t.ok(body.backends.every((b: { healthy: boolean, state: string, latencyMs: number }) => b.healthy && b.state === 'up' && Number.isInteger(b.latencyMs)))

  custom.behaviour = 'hang'
  const hung = await app.inject('/ready')
  t.equal(hung.statusCode, 503)
  const report = hung.json()
  t.equal(report.ok, false)
  t.match(report.backends[2], { name: 'CommandedBackend', namespace: 'custom', healthy: false, error: { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT', message: /200 ms/ } })
  t.equal(report.backends[1].healthy, true, 'the others are still reported healthy')

  custom.behaviour = 'fail'
  const failing = await app.throttle.health()
  t.match(failing.backends[2], { healthy: false, error: { code: 'TRAFFIK_ERR_BACKEND', message: /connection refused/ } })
  t.equal(custom.state, 'down', 'a failed probe is an outage like a failed call')
  custom.behaviour = 'ok'
  t.equal((await app.throttle.health()).ok, true)
  t.equal(custom.state, 'up', 'and a good probe ends it')
})

t.test('a degraded backend is reported as such, with the connection error', async (t) => {
  const backend = new MemcachedBackend(`127.0.0.1:${await freePort()}`, { namespace: uniqueNamespace('health'), startup: 'degraded' })
  const app = Fastify()
  await app.register(traffik, { backend })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const health = await app.throttle.health()
  t.equal(health.ok, false)
  t.match(health.backends[0], { state: 'degraded', healthy: false, error: { code: 'TRAFFIK_ERR_BACKEND_UNAVAILABLE', message: /connection refused/ } })
  t.same(JSON.parse(JSON.stringify(health)), health, 'plain JSON: a route can return it as it is')
})

t.test('a healthCheck() that breaks its contract (throws) is reported unhealthy, not thrown', async (t) => {
  class Broken extends CommandedBackend {
    override async healthCheck (): Promise<never> {
      throw new Error('probe exploded')
    }
  }
  const app = Fastify()
  await app.register(traffik, { backend: new Broken() })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const health = await app.throttle.health()
  t.equal(health.ok, false)
  t.match(health.backends[0], { name: 'Broken', healthy: false, error: { code: undefined, message: 'probe exploded' } })
})

t.test('health() options are checked', async (t) => {
  const app = Fastify()
  await app.register(traffik)
  t.teardown(async () => { await app.close() })
  await app.ready()
  await t.rejects(app.throttle.health({ timeoutMs: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /timeoutMs/ })
  await t.rejects(app.throttle.health({ timeout: 5 } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /timeout/ })
  await t.rejects(app.throttle.health(null as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})
