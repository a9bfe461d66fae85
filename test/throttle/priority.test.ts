/**
 * Priority classes on one budget (`priority` throttle option): every class draws on one counter,
 * a request is admitted while the budget used stays within its class's share, so the class with
 * share 1 is never refused while within its own share, whatever the lower classes send. Checked
 * against a reference model (fast-check) in memory, and on real Redis and memcached shared by two
 * apps; validation; the strategies that cannot share a budget between limits are refused.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import {
  Concurrency, FixedWindow, GCRA, InMemoryBackend, ManualClock, MemcachedBackend, RedisBackend, SlidingWindowCounter,
  SlidingWindowLog, TokenBucket, createThrottle, traffik, type ThrottleBackend
} from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const shares = { critical: 1, normal: 0.7, batch: 0.3 }
const classOf = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-class'])

async function buildApp (backend: ThrottleBackend, rate = '100/min'): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend, overrides: false })
  app.get('/api', {
    config: { rateLimit: { uid: 'api', rate, identifier: () => 'everyone', priority: { of: classOf, shares } } }
  }, async () => 'ok')
  await app.ready()
  return app
}

async function send (apps: FastifyInstance[], cls: string, count: number): Promise<number> {
  let admitted = 0
  for (let i = 0; i < count; i++) {
    const app = apps[i % apps.length]!
    if ((await app.inject({ url: '/api', headers: { 'x-class': cls } })).statusCode === 200) admitted++
  }
  return admitted
}

/** Floods the lower classes, then asks for the critical class's headroom: 30 of 100. */
async function saturatingMix (t: Test, apps: FastifyInstance[]): Promise<void> {
  t.equal(await send(apps, 'batch', 60), 30, 'batch: admitted up to its 30 % share')
  t.equal(await send(apps, 'normal', 60), 40, 'normal: up to 70 % of the budget, batch included')
  t.equal(await send(apps, 'batch', 10), 0, 'batch: nothing more above its share')
  t.equal(await send(apps, 'critical', 30), 30, 'critical: the reserved 30 % all admitted')
  t.equal(await send(apps, 'critical', 1), 0, 'critical: refused only past the whole limit')
}

t.test('in memory: a saturating mix never refuses the reserved class within its share', async (t) => {
  const app = await buildApp(new InMemoryBackend())
  t.teardown(async () => { await app.close() })
  await saturatingMix(t, [app])
  const res = await app.inject({ url: '/api', headers: { 'x-class': 'batch' } })
  t.equal(res.headers['x-ratelimit-limit'], '30', "the headers report the class's share of the limit")
})

t.test('on Redis, two apps share one budget by class', async (t) => {
  const url = await sharedRedisUrl()
  const namespace = uniqueNamespace('prio')
  const apps = [await buildApp(new RedisBackend(url, { namespace })), await buildApp(new RedisBackend(url, { namespace }))]
  t.teardown(async () => { for (const app of apps) await app.close() })
  await saturatingMix(t, apps)
})

t.test('on memcached, two apps share one budget by class', async (t) => {
  const servers = await sharedMemcachedServers()
  const namespace = uniqueNamespace('prio')
  const apps = [await buildApp(new MemcachedBackend(servers, { namespace, timeoutMs: 2000 })), await buildApp(new MemcachedBackend(servers, { namespace, timeoutMs: 2000 }))]
  t.teardown(async () => { for (const app of apps) await app.close() })
  await saturatingMix(t, apps)
})

t.test('matches the reference model: admitted iff used + cost <= floor(share x limit), and a share of nothing blocks', async (t) => {
  const strategies = [['FixedWindow', () => new FixedWindow()], ['SlidingWindowCounter', () => new SlidingWindowCounter()], ['SlidingWindowLog', () => new SlidingWindowLog()]] as const
  for (const [name, make] of strategies) {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.record({ cls: fc.constantFrom('critical', 'normal', 'batch', 'unknown'), cost: fc.integer({ min: 0, max: 5 }) }), { maxLength: 60 }),
      async (limit, requests) => {
        const clock = new ManualClock()
        const throttle = createThrottle({
          uid: 'p',
          rate: { limit, windowMs: 60_000 },
          strategy: make(),
          backend: new InMemoryBackend({ clock }),
          identifier: () => 'k',
          priority: { of: (request: { cls: string }) => request.cls, shares }
        } as never)
        let used = 0
        for (const { cls, cost } of requests) {
          // Within one window (the clock does not move), every strategy counts exactly what was admitted.
          const share = cls === 'unknown' ? shares.batch : shares[cls as keyof typeof shares]
          const cap = share === 1 ? limit : Math.floor(limit * share)
          // A class whose share rounds down to nothing is blocked, as `limit: 0` is.
          const expected = cap > 0 && used + cost <= cap
          const decision = await throttle.hit({ cls } as never, { cost })
          if (decision?.allowed !== expected) return false
          if (expected) used += cost
        }
        return true
      }), { numRuns: 60 })
    t.pass(`${name}: the model holds`)
  }
})

t.test('an async class function, and an unknown class answered by the fallback', async (t) => {
  const app = Fastify()
  await app.register(traffik, { overrides: false })
  app.get('/api', {
    config: { rateLimit: { rate: '10/min', identifier: () => 'k', priority: { of: async (request) => String(request.headers['x-class']), shares: { vip: 1, rest: 0.5 }, fallback: 'rest' } } }
  }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  const codes: number[] = []
  for (let i = 0; i < 6; i++) codes.push((await app.inject({ url: '/api', headers: { 'x-class': 'who-knows' } })).statusCode)
  t.same(codes, [200, 200, 200, 200, 200, 429], 'unknown class: the fallback share (5 of 10)')
  t.equal((await app.inject({ url: '/api', headers: { 'x-class': 'vip' } })).statusCode, 200)
})

t.test('concurrency slots by class: batch work cannot take the last slots', async (t) => {
  const app = Fastify()
  await app.register(traffik, { overrides: false })
  const release: Array<() => void> = []
  app.get('/export', {
    config: { rateLimit: { rate: { limit: 4, windowMs: 60_000 }, strategy: new Concurrency(), identifier: () => 'k', priority: { of: classOf, shares: { critical: 1, batch: 0.5 } } } }
  }, async () => {
    await new Promise<void>((resolve) => release.push(resolve))
    return 'ok'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/export`
  const inFlight = [fetch(url, { headers: { 'x-class': 'batch' } }), fetch(url, { headers: { 'x-class': 'batch' } })]
  while (release.length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal((await fetch(url, { headers: { 'x-class': 'batch' } })).status, 429, 'a third batch request: over its half of the slots')
  const critical = [fetch(url, { headers: { 'x-class': 'critical' } }), fetch(url, { headers: { 'x-class': 'critical' } })]
  while (release.length < 4) await new Promise((resolve) => setTimeout(resolve, 5))
  t.pass('both critical requests run beside the batch ones')
  for (const done of release) done()
  t.same((await Promise.all([...inFlight, ...critical])).map((r) => r.status), [200, 200, 200, 200])
})

t.test('validation', async (t) => {
  const base = { uid: 'v', rate: '10/min' }
  const bad = [
    { of: 'x', shares },
    { of: classOf, shares: {} },
    { of: classOf, shares: { a: 0 } },
    { of: classOf, shares: { a: 1.5 } },
    { of: classOf, shares: { a: '1' } },
    { of: classOf, shares, fallback: 'nope' },
    { of: classOf, shares, weights: {} },
    'high'
  ]
  for (const priority of bad) t.throws(() => createThrottle({ ...base, priority } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, JSON.stringify(priority))
  for (const strategy of [new TokenBucket(), new GCRA()]) {
    t.throws(() => createThrottle({ ...base, strategy, priority: { of: classOf, shares } } as never), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS', message: /scaled by the limit/ }, strategy.name)
  }
  const throttle = createThrottle({ ...base, priority: { of: classOf, shares } } as never)
  t.throws(() => { throttle.updateStrategy(new TokenBucket()) }, { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' }, 'switching to a bucket later is refused too')
})
