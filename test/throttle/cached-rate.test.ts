/**
 * `cachedRate` with its rates in a real PostgreSQL table: each key is queried once per ttlMs
 * (the loader counts its queries), concurrent first requests share one query, a changed plan applies
 * after ttlMs without a request waiting, the cache holds at most maxKeys keys, and failures
 * have a defined answer.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import t from 'tap'
import { ManualClock, cachedRate, traffik, type CachedRate } from '../../lib/index.js'
import { startPostgres } from '../../scripts/support/services.js'

const server = await startPostgres()
const db = new pg.Client({ host: server.host, port: server.port, user: 'postgres', database: 'postgres' })
await db.connect()
t.teardown(async () => {
  await db.end()
  await server.stop()
})
await db.query('CREATE TABLE plans (api_key text PRIMARY KEY, rate text NOT NULL)')
await db.query("INSERT INTO plans VALUES ('free-key', '2/min'), ('pro-key', '5/min')")

let queries = 0
/** The last query started, so a test can wait for a background reload to finish. */
let lastQuery: Promise<unknown> = Promise.resolve()
async function planRate (apiKey: string): Promise<string> {
  queries++
  const query = db.query<{ rate: string }>('SELECT rate FROM plans WHERE api_key = $1', [apiKey])
  lastQuery = query.catch(() => {})
  const { rows } = await query
  return rows[0]?.rate ?? '1/min'
}
const settled = async (): Promise<void> => {
  await lastQuery
  await new Promise((resolve) => setImmediate(resolve))
}

async function buildApp (rate: CachedRate): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik)
  app.get('/api', { config: { rateLimit: { rate, identifier: (request) => String(request.headers['x-api-key']) } } }, async () => 'ok')
  await app.ready()
  return app
}

async function statuses (app: FastifyInstance, apiKey: string, count: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) out.push((await app.inject({ url: '/api', headers: { 'x-api-key': apiKey } })).statusCode)
  return out
}

t.test('each key is read once per ttlMs; concurrent first requests share the read', async (t) => {
  queries = 0
  const rate = cachedRate({ key: (request) => String(request.headers['x-api-key']), load: planRate, ttlMs: 60_000 })
  const app = await buildApp(rate)
  t.teardown(async () => { await app.close() })
  const first = await Promise.all(Array.from({ length: 10 }, async () => await app.inject({ url: '/api', headers: { 'x-api-key': 'pro-key' } })))
  t.equal(queries, 1, '10 concurrent first requests: one query')
  t.same(first.map((r) => r.statusCode).sort(), [200, 200, 200, 200, 200, 429, 429, 429, 429, 429], "the plan's 5/min applies")
  t.same(await statuses(app, 'free-key', 3), [200, 200, 429])
  t.equal(queries, 2, 'one more key, one more query; then none per request')
  t.equal(rate.size, 2)
})

t.test('a changed plan applies after ttlMs; the stale rate answers meanwhile and nobody waits', async (t) => {
  queries = 0
  const clock = new ManualClock()
  const rate = cachedRate({ key: (request) => String(request.headers['x-api-key']), load: planRate, ttlMs: 50, clock })
  const app = await buildApp(rate)
  t.teardown(async () => {
    await app.close()
    await db.query("UPDATE plans SET rate = '2/min' WHERE api_key = 'free-key'")
  })
  t.same(await statuses(app, 'free-key', 1), [200])
  await db.query("UPDATE plans SET rate = '4/min' WHERE api_key = 'free-key'")
  clock.advance(80)
  const key = { headers: { 'x-api-key': 'free-key' } } as never
  t.same(rate(key), { limit: 2, windowMs: 60_000, unlimited: false }, 'stale: the old rate at once (synchronously), a reload starts')
  t.equal(queries, 2)
  t.same(rate(key), { limit: 2, windowMs: 60_000, unlimited: false }, 'while the reload runs, no second one')
  t.equal(queries, 2)
  await settled()
  t.same(rate(key), { limit: 4, windowMs: 60_000, unlimited: false }, 'the reloaded rate')
  rate.invalidate('free-key')
  t.equal(rate.size, 0, 'invalidate forgets a key')
})

t.test('at most maxKeys keys are held, the least recently used going first', async (t) => {
  queries = 0
  const rate = cachedRate({ key: (request: { key: string }) => request.key, load: planRate, maxKeys: 2 })
  await rate({ key: 'a' })
  await rate({ key: 'b' })
  rate({ key: 'a' }) // a is now the most recently used
  await rate({ key: 'c' })
  t.equal(rate.size, 2)
  t.equal(queries, 3)
  t.notOk(rate({ key: 'a' }) instanceof Promise, 'a stayed')
  t.ok(rate({ key: 'b' }) instanceof Promise, 'b went')
  rate.clear()
  t.equal(rate.size, 0)
})

t.test('failures: the error reaches the request, or the fallback answers; a known key keeps its rate', async (t) => {
  let failing = false
  let attempts = 0
  const load = async (k: string): Promise<string> => {
    attempts++
    if (failing) {
      const failed = Promise.reject(new Error('database down'))
      lastQuery = failed.catch(() => {})
      return await failed
    }
    return await planRate(k)
  }
  const strict = cachedRate({ key: (request: { key: string }) => request.key, load })
  failing = true
  await t.rejects(async () => await strict({ key: 'pro-key' }), { message: 'database down' }, 'no fallback: the error')
  failing = false
  t.same(await strict({ key: 'pro-key' }), { limit: 5, windowMs: 60_000, unlimited: false }, 'not remembered: the next request reads again')

  const clock = new ManualClock()
  const lenient = cachedRate({ key: (request: { key: string }) => request.key, load, fallback: '1/min', ttlMs: 20, clock })
  failing = true
  t.same(await lenient({ key: 'pro-key' }), { limit: 1, windowMs: 60_000, unlimited: false }, 'the fallback')
  failing = false
  clock.advance(40)
  t.same(lenient({ key: 'pro-key' }), { limit: 1, windowMs: 60_000, unlimited: false }, 'stale fallback: answered at once, reloading in the background')
  await settled()
  t.same(lenient({ key: 'pro-key' }), { limit: 5, windowMs: 60_000, unlimited: false }, 'the real rate once the source answers')
  failing = true
  clock.advance(40)
  const before = attempts
  lenient({ key: 'pro-key' })
  await settled()
  t.same(lenient({ key: 'pro-key' }), { limit: 5, windowMs: 60_000, unlimited: false }, 'a failed reload keeps the last rate')
  clock.advance(19)
  lenient({ key: 'pro-key' })
  t.equal(attempts, before + 1, 'one reload was tried, and the failing source is not asked again before the retry time')
  clock.advance(1)
  lenient({ key: 'pro-key' })
  t.equal(attempts, before + 2, 'then it is asked again')
  await settled()

  const bad = cachedRate({ key: (request: { key: string }) => request.key, load: () => 'lots' })
  await t.rejects(async () => await bad({ key: 'x' }), { code: 'TRAFFIK_ERR_INVALID_RATE', message: /rate loaded for "x"/ })
})

t.test('options are checked when the function is built', async (t) => {
  const key = (): string => 'k'
  const load = (): string => '1/s'
  t.throws(() => cachedRate(null as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => cachedRate({ key: 'k' as never, load }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => cachedRate({ key, load: undefined as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => cachedRate({ key, load, ttlMs: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => cachedRate({ key, load, maxKeys: 1.5 }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => cachedRate({ key, load, fallback: 'lots' }), { code: 'TRAFFIK_ERR_INVALID_RATE' })
  t.throws(() => cachedRate({ key, load, clock: Date as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => cachedRate<object>({ key: () => 5 as never, load })({}), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})
