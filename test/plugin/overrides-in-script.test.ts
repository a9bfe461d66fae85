/**
 * Fleet overrides read inside the Redis decision script (`overrides: { inDecision: true }`): the same answers as the overrides an
 * instance applies itself (in-memory backend, Lua ≡ JS on random timelines), a change made
 * through one process followed by the very next decision of another (bound 0), still one script
 * call per decision, expiry on the server's clock, precedence, shadow and disabled, all-or-nothing
 * across several limits, and a record stored before the field hash existed.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { InMemoryBackend, MemcachedBackend, RedisBackend, TokenBucket, traffik, type ThrottleBackend } from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, startRedis, uniqueNamespace } from '../../scripts/support/services.js'

const DAY = 86_400_000
/** A refresh interval no test outlasts: what the apps apply, they learn inside the decision. */
const NEVER = 3_600_000

async function buildApp (backend: ThrottleBackend): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend, overrides: { refreshMs: NEVER, inDecision: true } })
  const identifier = (request: { headers: Record<string, unknown> }): string => String(request.headers['x-client'])
  app.get('/one', { config: { rateLimit: { uid: 'one', rate: { limit: 3, windowMs: DAY }, identifier } } }, async () => 'ok')
  app.get('/bucket', { config: { rateLimit: { uid: 'bucket', rate: { limit: 3, windowMs: DAY }, strategy: new TokenBucket(), identifier, cost: 2 } } }, async () => 'ok')
  app.get('/two', {
    config: {
      rateLimit: [
        { uid: 'two-a', rate: { limit: 2, windowMs: DAY }, identifier },
        { uid: 'two-b', rate: { limit: 4, windowMs: DAY }, identifier }
      ]
    }
  }, async () => 'ok')
  await app.ready()
  return app
}

interface Answer { status: number, limit: string | undefined, remaining: string | undefined }

async function ask (app: FastifyInstance, url: string, client: string): Promise<Answer> {
  const response = await app.inject({ url, headers: { 'x-client': client } })
  return { status: response.statusCode, limit: response.headers['x-ratelimit-limit'] as string | undefined, remaining: response.headers['x-ratelimit-remaining'] as string | undefined }
}

function redisBackend (url: string): RedisBackend {
  return new RedisBackend(url, { namespace: uniqueNamespace('ois') })
}

const uids = ['one', 'bucket', 'two-a', 'two-b'] as const
const clients = ['a', 'b'] as const
const rates = [{ limit: 1, windowMs: DAY }, { limit: 5, windowMs: DAY }, { limit: 0, windowMs: DAY }, { limit: 2, windowMs: 2 * DAY }, null] as const
const valuesArb = fc.record({
  rate: fc.constantFrom(...rates),
  cost: fc.constantFrom(0, 1, 3),
  disabled: fc.boolean(),
  shadow: fc.boolean()
}, { requiredKeys: [] })

type Step =
  | { kind: 'ask', url: string, client: string }
  | { kind: 'set', uid: string, identifier: string | undefined, values: Record<string, unknown> }
  | { kind: 'clear', uid: string, identifier: string | undefined }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('ask' as const), url: fc.constantFrom('/one', '/bucket', '/two'), client: fc.constantFrom(...clients) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), uid: fc.constantFrom(...uids), identifier: fc.option(fc.constantFrom(...clients), { nil: undefined }), values: valuesArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), uid: fc.constantFrom(...uids), identifier: fc.option(fc.constantFrom(...clients), { nil: undefined }) }) }
)

t.test('Lua ≡ JS: overrides read in the Redis script answer like the overrides an instance applies itself', async (t) => {
  const url = await sharedRedisUrl()
  const js = await buildApp(new InMemoryBackend())
  t.teardown(async () => { await js.close() })
  let runs = 0
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), async (steps) => {
    runs++
    const memory = await buildApp(new InMemoryBackend())
    const redis = await buildApp(redisBackend(url))
    try {
      for (const step of steps) {
        if (step.kind === 'ask') {
          const [a, b] = [await ask(memory, step.url, step.client), await ask(redis, step.url, step.client)]
          if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${step.url} for ${step.client}: in-memory ${JSON.stringify(a)}, Redis ${JSON.stringify(b)}`)
          continue
        }
        for (const app of [memory, redis]) {
          if (step.kind === 'clear') {
            await app.throttle.overrides!.clear(step.uid, { identifier: step.identifier })
            continue
          }
          // Shadow mode is a whole throttle's only.
          const values = { ...step.values }
          if (step.identifier !== undefined) delete values.shadow
          await app.throttle.overrides!.set(step.uid, values, { identifier: step.identifier })
        }
      }
    } finally {
      await memory.close()
      await redis.close()
    }
  }), { numRuns: 40 })
  t.equal(runs, 40, '40 random timelines of overrides and requests agree, headers included')
})

t.test('two app processes on one Redis: the other process follows an override from its very next decision, one script call each', async (t) => {
  const redis = await startRedis()
  const url = `redis://${redis.host}:${redis.port}`
  const namespace = uniqueNamespace('ovs')
  // The processes never refresh during the test: only the decision script can carry the change.
  const child = fork(fileURLToPath(new URL('../helpers/overrides-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, REDIS_URL: url, NAMESPACE: namespace, OVERRIDES_REFRESH_MS: String(NEVER), OVERRIDES_IN_DECISION: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const [{ port }] = await once(child, 'message') as [{ port: number }]
  const admin = new Redis(url)
  const app = Fastify()
  await app.register(traffik, { backend: new RedisBackend(url, { namespace }), overrides: { refreshMs: NEVER, inDecision: true } })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    child.disconnect()
    admin.disconnect()
    await redis.stop()
  })
  const other = async (client: string): Promise<{ status: number, limit: string | null }> => {
    const response = await fetch(`http://127.0.0.1:${port}/r`, { headers: { 'x-client': client } })
    return { status: response.status, limit: response.headers.get('x-ratelimit-limit') }
  }
  const stats = async (): Promise<Map<string, number>> => {
    const info = await admin.info('commandstats')
    return new Map([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]))
  }
  const overrides = app.throttle.overrides!
  const before = await stats()
  let decisions = 0
  const decide = async (client: string): Promise<{ status: number, limit: string | null }> => { decisions++; return await other(client) }

  t.same([await decide('p'), await decide('p')], [{ status: 200, limit: '1' }, { status: 429, limit: '1' }], 'the other process enforces its 1/min')
  await overrides.set('api', { rate: '3/min' })
  t.same(await decide('p'), { status: 200, limit: '3' }, 'its next decision follows the override, and its headers show the overridden limit')
  t.same(await decide('p'), { status: 200, limit: '3' })
  t.same(await decide('p'), { status: 429, limit: '3' })
  await overrides.set('api', { rate: '10/min' }, { identifier: 'p' })
  t.same(await decide('p'), { status: 200, limit: '10' }, "the client's own override wins over the throttle's")
  await overrides.clear('api', { identifier: 'p' })
  t.same(await decide('p'), { status: 429, limit: '3' }, "cleared: the throttle's override again")
  await overrides.set('api', { disabled: true })
  t.same(await decide('p'), { status: 200, limit: null }, 'disabled: exempt, no headers')
  await overrides.set('api', { shadow: true })
  t.same(await decide('p'), { status: 200, limit: null }, 'shadow: would have throttled, admitted, no headers')
  await overrides.clear()
  t.same(await decide('p'), { status: 429, limit: '1' }, 'every override cleared: the configured 1/min at once')
  t.same(await decide('q'), { status: 200, limit: '1' })

  const after = await stats()
  const calls = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0)
  // Each of the 6 writes: a lock (SET NX), a GET of the record, the write script, and the lock's
  // release script (which GETs the lock). Commands run by scripts are counted too.
  const writes = 6
  t.equal(calls('evalsha') + calls('eval') - 2 * writes, decisions, `one script call per decision (${decisions})`)
  t.equal(calls('hmget'), decisions, 'each decision script read its overrides with one HMGET')
  t.equal(calls('get') - 2 * writes, decisions - 1, 'and its state with one GET (none where an override turned the limit off): no override read outside the scripts')
  t.comment(`${decisions} decisions: ${calls('evalsha') + calls('eval') - 2 * writes} script calls, ${calls('hmget')} HMGET inside them`)
})

t.test('on Redis: expiry on the server clock, several limits all-or-nothing, shadow charges, a limit of 0 lifted', async (t) => {
  const url = await sharedRedisUrl()
  const app = await buildApp(redisBackend(url))
  const admin = new Redis(url)
  t.teardown(async () => {
    await app.close()
    admin.disconnect()
  })
  const overrides = app.throttle.overrides!
  const serverNow = async (): Promise<number> => {
    const [seconds, micros] = await admin.time()
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  }

  await overrides.set('one', { rate: '10/min' }, { ttlMs: 500 })
  const expiresAt = (await overrides.list())[0]!.expiresAt!
  if (await serverNow() < expiresAt) t.equal((await ask(app, '/one', 'x')).limit, '10', 'in force')
  while (await serverNow() <= expiresAt) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal((await ask(app, '/one', 'x')).limit, '3', "lapsed on the server's clock, though this instance never read the record again")

  // Several limits: b in shadow, a enforcing; a rejection of a charges neither.
  await overrides.set('two-b', { rate: { limit: 1, windowMs: DAY }, shadow: true })
  t.same((await ask(app, '/two', 'y')).status, 200)
  t.same((await ask(app, '/two', 'y')).status, 200, "b's shadow rejection does not reject")
  t.same((await ask(app, '/two', 'y')).status, 429, 'a (2/day) rejects')
  await overrides.clear('two-b')
  t.same((await ask(app, '/two', 'y')).remaining, '0', 'a stays exhausted')
  await overrides.set('two-a', { disabled: true })
  const answer = await ask(app, '/two', 'y')
  t.same([answer.status, answer.limit, answer.remaining], [200, '4', '2'], 'a off: b alone answers, and b held 1 from the shadow hit (its rejected shadow hit and the 429 charged nothing), now 2')

  await overrides.set('one', { rate: '0/min' })
  t.same((await ask(app, '/one', 'z')).status, 429, 'an override of 0 blocks')
  await overrides.clear('one')
  await overrides.set('one', { rate: '0/min' }, { identifier: 'z' })
  t.same((await ask(app, '/one', 'z')).status, 429)
  await overrides.set('one', { rate: '5/min' }, { identifier: 'z' })
  t.same((await ask(app, '/one', 'z')).limit, '5')
})

t.test('a record stored before the decision scripts read overrides applies to them from the start', async (t) => {
  const url = await sharedRedisUrl()
  const backend = redisBackend(url)
  // Another backend object on the same namespace writes the record as earlier versions did.
  const stored = new RedisBackend(url, { namespace: backend.namespace })
  await stored.initialize()
  await stored.set('traffik:overrides', JSON.stringify({ v: 1, entries: [{ uid: 'one', values: { rate: '7/min' } }] }))
  const app = await buildApp(backend)
  t.teardown(async () => {
    await app.close()
    await stored.close()
  })
  t.equal((await ask(app, '/one', 'm')).limit, '7', 'the stored override is in the field hash and applied by the script')
  t.same((await app.throttle.overrides!.list()).map((e) => e.uid), ['one'], 'list still reads the record')
})

t.test('inDecision is a boolean, and off by default: then decisions on Redis follow the overrides read every refreshMs', async (t) => {
  const fresh = Fastify()
  await t.rejects(async () => { await fresh.register(traffik, { overrides: { inDecision: 'yes' as never } }) }, { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /overrides.inDecision/ })
  await fresh.close().catch(() => {})
  const url = await sharedRedisUrl()
  const backend = redisBackend(url)
  const app = Fastify()
  await app.register(traffik, { backend, overrides: { refreshMs: NEVER } })
  app.get('/one', { config: { rateLimit: { uid: 'one', rate: '3/min' } } }, async () => 'ok')
  await app.ready()
  const other = new RedisBackend(url, { namespace: backend.namespace })
  await other.initialize()
  t.teardown(async () => {
    await app.close()
    await other.close()
  })
  await other.set('traffik:overrides', JSON.stringify({ v: 1, entries: [{ uid: 'one', values: { rate: '9/min' } }] }))
  t.equal((await app.inject('/one')).headers['x-ratelimit-limit'], '3', 'a record written elsewhere is not read by the decision')
  await app.throttle.overrides!.refresh()
  t.equal((await app.inject('/one')).headers['x-ratelimit-limit'], '9', 'but by the next refresh')
})

t.test('Memcached (and every backend but Redis with inDecision): another instance follows a change at its next read of the record, not before', async (t) => {
  const servers = await sharedMemcachedServers()
  const namespace = uniqueNamespace('ovm')
  // inDecision is asked for and has no effect here; reads are driven by hand (refresh) instead of the timer.
  const [a, b] = [await buildApp(new MemcachedBackend(servers, { namespace })), await buildApp(new MemcachedBackend(servers, { namespace }))]
  t.teardown(async () => {
    await a.throttle.overrides!.clear()
    await a.close()
    await b.close()
  })
  await a.throttle.overrides!.set('one', { rate: { limit: 8, windowMs: DAY } })
  t.equal((await ask(a, '/one', 'k')).limit, '8', 'the writing instance at once')
  t.equal((await ask(b, '/one', 'k')).limit, '3', 'the other one not before its next read (at most refreshMs away)')
  await b.throttle.overrides!.refresh()
  t.equal((await ask(b, '/one', 'k')).limit, '8', 'and from that read on')
  await a.throttle.overrides!.clear('one')
  t.equal((await ask(b, '/one', 'k')).limit, '8', 'a clear likewise waits for the read')
  await b.throttle.overrides!.refresh()
  t.equal((await ask(b, '/one', 'k')).limit, '3')
})
