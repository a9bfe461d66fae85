/**
 * fastify-traffik/compat with a `@fastify/rate-limit` custom store, written the way its README's
 * examples write one (a constructor taking the options, `incr(key, cb)`, `child(routeOptions)`
 * keyed by the route): the store is the limiter, compat reads its `{ current, ttl }`.
 */
import { mock } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildCompatApp, ok } from './compat-app.js'
import compat, { type RateLimitPluginOptions } from '../../lib/compat/index.js'

interface Row { count: number, expires: number }
const made: Array<Record<string, unknown>> = []

/** A fixed-window store over a shared table, one row per route and key, as the README's Knex store. */
function TableStore (this: any, options: Record<string, unknown>): void {
  made.push(options)
  this.options = options
  this.route = ''
  this.table = (options.table as Map<string, Row> | undefined) ?? new Map<string, Row>()
}
TableStore.prototype.incr = function (this: any, key: string, cb: (error: Error | null, result?: { current: number, ttl: number }) => void): void {
  if (key === 'broken') { cb(new Error('table is down')); return }
  const now = Date.now()
  const id = `${this.route as string}|${key}`
  const row: Row | undefined = this.table.get(id)
  if (row === undefined || row.expires <= now) {
    this.table.set(id, { count: 1, expires: now + (this.options.timeWindow as number) })
    cb(null, { current: 1, ttl: this.options.timeWindow as number })
    return
  }
  row.count++
  cb(null, { current: row.count, ttl: row.expires - now })
}
TableStore.prototype.child = function (this: any, routeOptions: Record<string, any>) {
  const store = new (TableStore as any)({ ...this.options, ...routeOptions, table: this.table })
  store.route = `${String(routeOptions.routeInfo.method ?? '')}${String(routeOptions.routeInfo.url ?? '')}`
  return store
}

async function build (t: Test, options: RateLimitPluginOptions, routes: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  made.length = 0
  return await buildCompatApp(t, options, routes)
}

t.test('the store counts: headers from its { current, ttl }, 429 over max, a fresh window when the store says so', async (t) => {
  const app = await build(t, { store: TableStore as never, max: 2, timeWindow: '1 second' }, (app) => { app.get('/', ok) })
  t.equal(made[0]!.timeWindow, 1000, 'the store is made with the options, timeWindow read as ms')
  t.equal(made[0]!.max, 2)
  let res = await app.inject('/')
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset']], [200, '2', '1', '1'])
  await app.inject('/')
  mock.timers.tick(400)
  res = await app.inject('/')
  t.same([res.statusCode, res.headers['x-ratelimit-remaining'], res.headers['retry-after']], [429, '0', '1'])
  t.same(res.json(), { statusCode: 429, error: 'Too Many Requests', message: 'Rate limit exceeded, retry in 1 second' })
  t.equal(app.rateLimitCompat.throttles.size, 0, 'the store is the limiter: no native throttle')
  mock.timers.tick(600)
  res = await app.inject('/')
  t.same([res.statusCode, res.headers['x-ratelimit-remaining']], [200, '1'])
})

t.test("routes get store.child() with the merged options and the route; their counts are the store's own", async (t) => {
  const app = await build(t, { store: TableStore as never, global: false, max: 5 }, (app) => {
    app.get('/a', { config: { rateLimit: { max: 1, timeWindow: 1000 } } }, ok)
    app.get('/b', { config: { rateLimit: { timeWindow: 1000 } } }, ok)
  })
  const children = made.slice(1)
  const gets = children.filter((o) => (o.routeInfo as { method: string }).method === 'GET')
  t.same(gets.map((o) => [o.max, o.timeWindow, (o.routeInfo as { url: string }).url]), [[1, 1000, '/a'], [5, 1000, '/b']])
  t.equal(children.length, 4, 'HEAD routes get their own child, as each route does')
  const count = async (url: string, n: number): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push((await app.inject(url)).statusCode)
    return out
  }
  t.same(await count('/a', 2), [200, 429])
  t.same(await count('/b', 5), [200, 200, 200, 200, 200], 'each route counts in its own rows')
})

t.test('ban with a store: the store counts every request, so the rejection after ban others answers 403; onBanReach once', async (t) => {
  const banned: string[] = []
  const app = await build(t, { store: TableStore as never, max: 1, ban: 1, timeWindow: 1000, onBanReach: (_req, key) => { banned.push(key) } }, (app) => { app.get('/', ok) })
  const out: number[] = []
  for (let i = 0; i < 5; i++) out.push((await app.inject('/')).statusCode)
  t.same(out, [200, 429, 403, 403, 403])
  t.same(banned, ['127.0.0.1'])
})

t.test('a store error: 500 with its message, or skipOnError lets the request through with remaining = max', async (t) => {
  const failing = await build(t, { store: TableStore as never, keyGenerator: () => 'broken' }, (app) => { app.get('/', ok) })
  const failed = await failing.inject('/')
  t.same([failed.statusCode, failed.json().message], [500, 'table is down'])
  const skipping = await build(t, { store: TableStore as never, max: 3, keyGenerator: () => 'broken', skipOnError: true }, (app) => { app.get('/', ok) })
  const skipped = await skipping.inject('/')
  t.same([skipped.statusCode, skipped.headers['x-ratelimit-remaining']], [200, '3'])
})

t.test('continueExceeding and exponentialBackoff are the store\'s to implement: it receives them', async (t) => {
  await build(t, { store: TableStore as never, continueExceeding: true, exponentialBackoff: true }, (app) => { app.get('/', ok) })
  t.same([made[0]!.continueExceeding, made[0]!.exponentialBackoff], [true, true])
})

t.test('bad stores are coded errors at registration', async (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ store: 'redis' }, 'TRAFFIK_ERR_INVALID_OPTION', /options\.store/],
    [{ store: class { incr (): void {} } }, 'TRAFFIK_ERR_INVALID_OPTION', /incr\(key, callback, timeWindow, max\) and child/],
    [{ store: class { incr (): void {} child (): unknown { return {} } }, global: false }, 'TRAFFIK_ERR_INVALID_OPTION', /store\.child\(\)/]
  ]
  for (const [options, code, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => {
      await app.register(compat, options as RateLimitPluginOptions)
      app.get('/', { config: { rateLimit: { max: 1 } } }, ok)
      await app.ready()
    }, { code, message }, JSON.stringify(Object.keys(options)))
    await app.close()
  }
  const app = Fastify()
  await app.register(compat, {})
  t.throws(() => app.get('/', { config: { rateLimit: { store: TableStore } as never } }, ok), { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /'store' is a plugin option/ })
  await app.close()
})

t.test('a store keys a group by the key and the groupId; with `redis` too, the store counts and no RedisBackend is made', async (t) => {
  const keys: string[] = []
  function KeyStore (this: any): void {}
  KeyStore.prototype.incr = function (key: string, cb: (error: Error | null, result?: { current: number, ttl: number }) => void): void {
    keys.push(key)
    cb(null, { current: 1, ttl: 1000 })
  }
  KeyStore.prototype.child = function () { return this }
  // A client that is never connected: the old plugin ignored `redis` when given a store.
  const redis = { status: 'end', defineCommand: () => { throw new Error('the client is unused') } }
  const app = await build(t, { store: KeyStore as never, redis: redis as never, global: false, keyGenerator: () => 'k1' }, (app) => {
    app.get('/a', { config: { rateLimit: { max: 1, groupId: 'g' } } }, ok)
  })
  t.equal((await app.inject('/a')).statusCode, 200)
  t.same(keys, ['k1g'])
  t.equal(app.rateLimitCompat.backend.constructor.name, 'InMemoryBackend')
})
