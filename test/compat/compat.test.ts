/**
 * fastify-traffik/compat on its own: the behaviours of @fastify/rate-limit's test suite that the
 * side-by-side file does not compare, Redis, the deliberate differences, and bad options.
 */
import { mock } from 'node:test'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { buildCompatApp, ok, statuses } from './compat-app.js'
import compat, { normalizeIP, type RateLimitPluginOptions } from '../../lib/compat/index.js'
import { Throttle } from '../../lib/index.js'
import { sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const build = buildCompatApp

t.test("node:test mock timers move compat's default clock", async (t) => {
  const app = await build(t, { max: 1, timeWindow: '10 seconds' }, (app) => { app.get('/', ok) })
  t.same(await statuses(app, 2), [200, 429])
  mock.timers.tick(9_999)
  t.equal((await app.inject('/')).headers['retry-after'], '1')
  mock.timers.tick(1)
  t.same(await statuses(app, 2), [200, 429])
})

t.test('groupId: routes of one group share one budget (the old plugin gave each route its own)', async (t) => {
  const app = await build(t, { global: false }, (app) => {
    app.get('/a', { config: { rateLimit: { max: 2, timeWindow: 1000, groupId: 'g' } } }, ok)
    app.get('/b', { config: { rateLimit: { max: 2, timeWindow: 1000, groupId: 'g' } } }, ok)
    app.get('/c', { config: { rateLimit: { max: 2, timeWindow: 1000 } } }, ok)
  })
  t.same([...await statuses(app, 1, '/a'), ...await statuses(app, 2, '/b')], [200, 200, 429])
  t.same(await statuses(app, 3, '/c'), [200, 200, 429], 'a route outside the group counts on its own')
  t.ok(app.rateLimitCompat.throttles.get('group:g') instanceof Throttle)
})

t.test('groupId: the callbacks receive the key with the groupId appended, as before; an array allowList also matches the key alone', async (t) => {
  const seen: string[] = []
  const note = (name: string) => (_req: unknown, key: string): void => { seen.push(`${name}:${key}`) }
  const app = await build(t, {
    global: false,
    keyGenerator: () => 'k1',
    allowList: (_req, key) => { seen.push(`allowList:${key}`); return false },
    onExceeding: note('onExceeding'),
    onExceeded: note('onExceeded'),
    onBanReach: note('onBanReach')
  }, (app) => {
    app.get('/a', { config: { rateLimit: { max: (_req, key) => { seen.push(`max:${key}`); return 1 }, timeWindow: 1000, groupId: 'g', ban: 0 } } }, ok)
    app.get('/listed', { config: { rateLimit: { max: 1, timeWindow: 1000, groupId: 'g2', allowList: ['k1'] } } }, ok)
  })
  t.same(await statuses(app, 2, '/a'), [200, 403])
  t.same(seen, ['allowList:k1g', 'max:k1g', 'onExceeding:k1g', 'allowList:k1g', 'max:k1g', 'onExceeded:k1g', 'onBanReach:k1g'])
  t.same(await statuses(app, 3, '/listed'), [200, 200, 200], 'the listed key is exempt on a grouped route')
})

t.test('onExceeding on every allowed request, onExceeded on every rejected one, with the key', async (t) => {
  const calls: string[] = []
  const app = await build(t, {
    max: 2,
    timeWindow: 1000,
    onExceeding: (_req, key) => { calls.push(`ing:${key}`) },
    onExceeded: (_req, key) => { calls.push(`ed:${key}`) }
  }, (app) => { app.get('/', ok) })
  await statuses(app, 5)
  t.same(calls, ['ing:127.0.0.1', 'ing:127.0.0.1', 'ed:127.0.0.1', 'ed:127.0.0.1', 'ed:127.0.0.1'])
})

t.test('route options: HEAD routes count on their own, timeWindow functions, draft names, preValidation', async (t) => {
  const app = await build(t, { global: false }, (app) => {
    app.get('/h', { config: { rateLimit: { max: 10, timeWindow: 1000 } } }, ok)
    app.get('/fn', { config: { rateLimit: { max: 1, timeWindow: async (_req: unknown, key: string) => key === '127.0.0.1' ? 3000 : 1000 } as never } }, ok)
    app.get('/draft', { config: { rateLimit: { max: 1, timeWindow: 1000, enableDraftSpec: true, hook: 'preValidation' } } }, ok)
  })
  t.equal((await app.inject('/h')).headers['x-ratelimit-remaining'], '9')
  t.equal((await app.inject({ method: 'HEAD', url: '/h' })).headers['x-ratelimit-remaining'], '9')
  await app.inject('/fn')
  t.equal((await app.inject('/fn')).headers['retry-after'], '3')
  const draft = await app.inject('/draft')
  t.equal(draft.headers['ratelimit-remaining'], '0', 'enableDraftSpec works on a route (the old plugin ignored it there)')
  t.notOk(draft.headers['x-ratelimit-remaining'])
})

t.test('a route addHeaders switches single headers off; the others stay', async (t) => {
  const app = await build(t, { max: 1, timeWindow: 1000 }, (app) => {
    app.get('/', { config: { rateLimit: { addHeaders: { 'retry-after': false } } } }, ok)
  })
  await app.inject('/')
  const res = await app.inject('/')
  t.equal(res.statusCode, 429)
  t.notOk(res.headers['retry-after'])
  t.equal(res.headers['x-ratelimit-limit'], '1')
})

t.test('ipv6Subnet, normalizeIP, a numeric key', async (t) => {
  t.equal(normalizeIP('::ffff:1.2.3.4'), '1.2.3.4')
  t.equal(normalizeIP('2001:db8:1:2::5'), '2001:db8:1:2:0:0:0:0/64')
  t.equal(normalizeIP('2001:db8:1:2::5', 48), '2001:db8:1:0:0:0:0:0/48')
  t.equal(normalizeIP('fe80::1%eth0', 128), 'fe80:0:0:0:0:0:0:1/128')
  t.equal(normalizeIP('not-an-ip:x'), 'not-an-ip:x')
  t.equal(normalizeIP('10.0.0.1'), '10.0.0.1')
  const app = await build(t, { max: 1, timeWindow: 1000, ipv6Subnet: 48 }, (app) => { app.get('/', ok) }, { trustProxy: true })
  const from = async (ip: string): Promise<number> => (await app.inject({ url: '/', headers: { 'x-forwarded-for': ip } })).statusCode
  t.same([await from('2001:db8:1:2::1'), await from('2001:db8:1:3::1'), await from('2001:db8:2::1')], [200, 429, 200])
  const numeric = await build(t, { max: 1, timeWindow: 1000, keyGenerator: () => 42, allowList: ['42'] }, (app) => { app.get('/', ok) })
  t.same(await statuses(numeric, 3), [200, 200, 200], 'a numeric key matches its string in allowList')
  t.equal((await numeric.rateLimitCompat.throttles.get('global')!.hit({ ip: 'x' } as never)).limit, Infinity, 'allow-listed in direct calls too')
})

t.test('the native API is one call away: throttles, check, reset', async (t) => {
  const app = await build(t, { max: 1, timeWindow: 60_000 }, (app) => { app.get('/', ok) })
  t.same(await statuses(app, 2), [200, 429])
  const global = app.rateLimitCompat.throttles.get('global')!
  t.equal(global.uid, 'global')
  const decision = await global.check({ ip: '127.0.0.1' } as never)
  t.same([decision.allowed, decision.remaining, decision.limit], [false, 0, 1], 'a direct call works the key and rate out itself')
  await app.rateLimitCompat.reset()
  t.same(await statuses(app, 1), [200])
})

t.test('a rejected request runs no later hook and no handler', async (t) => {
  let handled = 0
  let validated = 0
  const app = await build(t, { max: 1, timeWindow: 1000 }, (app) => {
    app.get('/', { preValidation: async () => { validated++ } }, async () => { handled++; return 'ok' })
  })
  await statuses(app, 3)
  t.same([handled, validated], [1, 1])
})

t.test('one registration limits a request once, even with fastify.rateLimit() on the route', async (t) => {
  const app = await build(t, { max: 2, timeWindow: 1000 }, (app) => {
    app.get('/', { preHandler: app.rateLimit({ max: 1, timeWindow: 1000 }) }, ok)
  })
  t.same(await statuses(app, 3), [200, 200, 429], 'the global limit ran first; the decorator hook is skipped, as before')
})

t.test('bad options fail at registration with coded errors', async (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ store: class {} }, 'TRAFFIK_ERR_INVALID_OPTION', /options\.store/],
    [{ maxx: 1 }, 'TRAFFIK_ERR_INVALID_OPTION', /maxx/],
    [{ max: -1 }, 'TRAFFIK_ERR_INVALID_OPTION', /max/],
    [{ max: NaN }, 'TRAFFIK_ERR_INVALID_OPTION', /max/],
    [{ timeWindow: 'soon' }, 'TRAFFIK_ERR_INVALID_OPTION', /timeWindow/],
    [{ hook: 'onSend' }, 'TRAFFIK_ERR_INVALID_OPTION', /hook/],
    [{ global: 'yes' }, 'TRAFFIK_ERR_INVALID_OPTION', /global/],
    [{ cache: 0 }, 'TRAFFIK_ERR_INVALID_OPTION', /cache/],
    [{ nameSpace: '' }, 'TRAFFIK_ERR_INVALID_OPTION', /nameSpace/],
    [{ groupId: 7 }, 'TRAFFIK_ERR_INVALID_OPTION', /groupId/],
    [{ ipv6Subnet: 129 }, 'TRAFFIK_ERR_INVALID_OPTION', /ipv6Subnet/],
    [{ allowList: 'x' }, 'TRAFFIK_ERR_INVALID_OPTION', /allowList/],
    [{ keyGenerator: 'ip' }, 'TRAFFIK_ERR_INVALID_OPTION', /keyGenerator/],
    [{ skipOnError: 1 }, 'TRAFFIK_ERR_INVALID_OPTION', /skipOnError/],
    [{ enableDraftSpec: 'yes' }, 'TRAFFIK_ERR_INVALID_OPTION', /enableDraftSpec/],
    [{ addHeaders: { 'x-ratelimit-limt': false } }, 'TRAFFIK_ERR_INVALID_OPTION', /x-ratelimit-limt/],
    [{ addHeaders: 'none' }, 'TRAFFIK_ERR_INVALID_OPTION', /addHeaders/]
  ]
  for (const [options, code, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(compat, options as RateLimitPluginOptions) }, { code, message }, JSON.stringify(options))
    await app.close()
  }
  const app = Fastify()
  await app.register(compat, {})
  t.throws(() => app.get('/', { config: { rateLimit: 5 as never } }, ok), { code: 'TRAFFIK_ERR_INVALID_ROUTE_CONFIG', message: /Unknown value for route rate-limit configuration/ })
  t.throws(() => app.get('/x', { config: { rateLimit: { max: 1, nope: 1 } as never } }, ok), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /config\.rateLimit of GET \/x\.nope/ })
  await app.close()
})

t.test('Redis: counters in Redis under nameSpace, skipOnError, and the store error as 500', async (t) => {
  const url = await sharedRedisUrl()
  const nameSpace = uniqueNamespace('compat')
  const redis = new Redis(url, { maxRetriesPerRequest: 1 })
  t.teardown(() => { redis.disconnect() })
  const app = Fastify()
  await app.register(compat, { redis, nameSpace, max: 2, timeWindow: 10_000 })
  app.get('/', ok)
  t.teardown(async () => { await app.close() })
  t.same(await statuses(app, 3), [200, 200, 429])
  t.ok((await redis.keys(`${nameSpace}:*`)).length > 0, 'keys live under the namespace')

  // A client that goes away after start-up, as in the old plugin's tests (redis.quit()).
  const goneSkip = new Redis(url)
  const goneRaise = new Redis(url)
  const skip = Fastify()
  await skip.register(compat, { redis: goneSkip, skipOnError: true, max: 2, timeWindow: 1000 })
  skip.get('/', ok)
  const raise = Fastify()
  await raise.register(compat, { redis: goneRaise, max: 2, timeWindow: 1000 })
  raise.get('/', ok)
  await skip.ready()
  await raise.ready()
  await goneSkip.quit()
  await goneRaise.quit()
  t.teardown(async () => { await skip.close(); await raise.close() })
  const skipped = await skip.inject('/')
  t.equal(skipped.statusCode, 200)
  t.equal(skipped.headers['x-ratelimit-remaining'], '2', 'skipOnError: remaining reads max')
  t.equal(skipped.headers['x-ratelimit-reset'], '0')
  const failed = await raise.inject('/')
  t.equal(failed.statusCode, 500, "the store's error fails the request, as before")
  t.equal(failed.json().message, 'Connection is closed.')
})
