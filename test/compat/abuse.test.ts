/**
 * fastify-traffik/compat's abuse options, checked the way @fastify/rate-limit's own tests check
 * them: `ban` / `onBanReach` (403 after `ban` rejections in the window) and `continueExceeding`
 * (each rejection restarts the window), on the in-memory default and on Redis.
 */
import { mock } from 'node:test'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { buildCompatApp, ok, statuses } from './compat-app.js'
import compat, { type ErrorResponseBuilderContext, type RateLimitPluginOptions } from '../../lib/compat/index.js'
import { sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const build = buildCompatApp

t.test('With ban / onBanReach: 200, 429, then 403; onBanReach once with the key, onExceeded on every rejection', async (t) => {
  const banned: string[] = []
  const exceeded: string[] = []
  const app = await build(t, {
    max: 1,
    ban: 1,
    onBanReach: (req, key) => { t.ok(req.headers); banned.push(key) },
    onExceeded: (_req, key) => { exceeded.push(key) }
  })
  t.same(await statuses(app, 5), [200, 429, 403, 403, 403])
  t.same(banned, ['127.0.0.1'], 'once per ban, on the rejection that reaches it')
  t.equal(exceeded.length, 4, 'the 403s are rejections too, as before')
})

t.test('ban directly (ban: 0): the first rejection is a 403 with the old body and headers, for the rest of the window', async (t) => {
  const app = await build(t, { max: 2, ban: 0, timeWindow: '1s' })
  let res = await app.inject('/')
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', '1'])
  res = await app.inject('/')
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', '0'])
  res = await app.inject('/')
  t.equal(res.statusCode, 403)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.same([res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset'], res.headers['retry-after']], ['2', '0', '1', '1'])
  t.same(res.json(), { statusCode: 403, error: 'Forbidden', message: 'Rate limit exceeded, retry in 1 second' })
  mock.timers.tick(500)
  res = await app.inject('/')
  t.same([res.statusCode, res.headers['retry-after']], [403, '1'], 'still banned, and hammering does not lengthen the ban')
  mock.timers.tick(600)
  res = await app.inject('/')
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', '1'], 'a window later: a fresh budget')
})

t.test('errorResponseBuilder sees statusCode 403 and ban: true; a route may set its own ban', async (t) => {
  const contexts: ErrorResponseBuilderContext[] = []
  const app = await build(t, {
    global: false,
    errorResponseBuilder: (_req, context) => {
      contexts.push(context)
      return { statusCode: context.statusCode, ban: context.ban, after: context.after }
    }
  }, (app) => {
    app.get('/', { config: { rateLimit: { max: 1, timeWindow: 60_000, ban: 2 } } }, ok)
    app.get('/open', { config: { rateLimit: { max: 1, timeWindow: 60_000 } } }, ok)
  })
  t.same(await statuses(app, 5), [200, 429, 429, 403, 403])
  t.same(contexts.map((c) => [c.statusCode, c.ban]), [[429, false], [429, false], [403, true], [403, true]])
  t.same((await app.inject('/')).json(), { statusCode: 403, ban: true, after: '1 minute' })
  t.same(await statuses(app, 5, '/open'), [200, 429, 429, 429, 429], 'a route without ban never answers 403')
})

t.test('a ban counts rejections within one window: rejections spread over windows do not add up', async (t) => {
  const app = await build(t, { max: 1, ban: 1, timeWindow: 1000 })
  t.same(await statuses(app, 2), [200, 429])
  mock.timers.tick(1000)
  t.same(await statuses(app, 2), [200, 429], 'the rejection of the last window is forgotten')
  mock.timers.tick(1000)
  t.same(await statuses(app, 3), [200, 429, 403])
})

t.test('When continue exceeding is on (Local): the 429 says the whole window', async (t) => {
  const app = await build(t, { max: 1, timeWindow: 5000, continueExceeding: true })
  t.equal((await app.inject('/')).statusCode, 200)
  const second = await app.inject('/')
  t.same([second.statusCode, second.headers['x-ratelimit-limit'], second.headers['x-ratelimit-remaining'], second.headers['x-ratelimit-reset']], [429, '1', '0', '5'])
})

t.test('issue #207: with continueExceeding each rejection restarts the window; a full window after the last one admits', async (t) => {
  const app = await build(t, { global: false }, (app) => {
    app.get('/', { config: { rateLimit: { max: 1, timeWindow: 5000, continueExceeding: true } } }, ok)
  })
  t.same(await statuses(app, 2), [200, 429])
  mock.timers.tick(3000)
  const renewed = await app.inject('/')
  t.same([renewed.statusCode, renewed.headers['retry-after']], [429, '5'])
  mock.timers.tick(3000)
  t.same(await statuses(app, 1), [429], '6 s after the first rejection: still limited, the window was restarted')
  mock.timers.tick(4999)
  t.same(await statuses(app, 1), [429])
  mock.timers.tick(5000)
  const admitted = await app.inject('/')
  t.same([admitted.statusCode, admitted.headers['x-ratelimit-remaining']], [200, '0'])
})

t.test('continueExceeding with ban: 0 keeps the ban while the client keeps coming', async (t) => {
  const banned: string[] = []
  const app = await build(t, { max: 1, timeWindow: 1000, ban: 0, continueExceeding: true, onBanReach: (_req, key) => { banned.push(key) } })
  t.same(await statuses(app, 2), [200, 403])
  mock.timers.tick(900)
  t.same(await statuses(app, 1), [403])
  mock.timers.tick(900)
  t.same(await statuses(app, 1), [403], 'the ban was renewed by the last request')
  mock.timers.tick(1000)
  t.same(await statuses(app, 1), [200])
  t.same(banned, ['127.0.0.1'])
})

t.test('ban and continueExceeding: bad values and combinations compat cannot decide are coded errors at registration', async (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ ban: 'x' }, 'TRAFFIK_ERR_INVALID_OPTION', /ban/],
    [{ ban: -2 }, 'TRAFFIK_ERR_INVALID_OPTION', /ban/],
    [{ ban: Infinity }, 'TRAFFIK_ERR_INVALID_OPTION', /ban/],
    [{ onBanReach: true }, 'TRAFFIK_ERR_INVALID_OPTION', /onBanReach/],
    [{ continueExceeding: 'yes' }, 'TRAFFIK_ERR_INVALID_OPTION', /continueExceeding/],
    [{ ban: 1, timeWindow: () => 1000 }, 'TRAFFIK_ERR_UNSUPPORTED', /'ban' with a 'timeWindow' function/],
    [{ ban: 2, continueExceeding: true, timeWindow: () => 1000 }, 'TRAFFIK_ERR_UNSUPPORTED', /'ban' with a 'timeWindow' function/]
  ]
  for (const [options, code, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => {
      await app.register(compat, options as RateLimitPluginOptions)
      app.get('/', ok)
      await app.ready()
    }, { code, message }, JSON.stringify(options))
    await app.close()
  }
})

t.test('Redis: ban and continueExceeding decided in Redis', async (t) => {
  const redis = new Redis(await sharedRedisUrl())
  t.teardown(() => { redis.disconnect() })
  const banned: string[] = []
  const app = Fastify()
  await app.register(compat, { redis, nameSpace: uniqueNamespace('compat-ban'), global: false, onBanReach: (_req, key) => { banned.push(key) } })
  app.get('/ban', { config: { rateLimit: { max: 1, timeWindow: 60_000, ban: 1 } } }, ok)
  app.get('/continue', { config: { rateLimit: { max: 1, timeWindow: 60_000, continueExceeding: true } } }, ok)
  t.teardown(async () => { await app.close() })
  t.same(await statuses(app, 4, '/ban'), [200, 429, 403, 403])
  t.same(banned, ['127.0.0.1'])
  const ban = await app.inject('/ban')
  t.same([ban.headers['x-ratelimit-remaining'], ban.json().error], ['0', 'Forbidden'])
  t.ok(Number(ban.headers['retry-after']) > 55 && Number(ban.headers['retry-after']) <= 60, 'banned for one window')
  t.same(await statuses(app, 3, '/continue'), [200, 429, 429])
  t.equal((await app.inject('/continue')).headers['x-ratelimit-reset'], '60', 'each rejection restarts the whole window')
})
