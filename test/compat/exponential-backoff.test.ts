/**
 * fastify-traffik/compat's `exponentialBackoff`, checked the way @fastify/rate-limit's own tests
 * check it (statuses, bodies, `retry-after`, limit headers): on the in-memory default under
 * `node:test` mock timers, at plugin and route level, and on Redis; with `ban` and with
 * `continueExceeding`.
 */
import { mock } from 'node:test'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import { buildCompatApp, ok, statuses } from './compat-app.js'
import compat, { type RateLimitPluginOptions } from '../../lib/compat/index.js'
import { sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const tooMany = (after: string): object => ({ statusCode: 429, error: 'Too Many Requests', message: `Rate limit exceeded, retry in ${after}` })

t.test('Exponential Backoff (route level): 200, 200, 429, 429, and a fresh budget once the block ends', async (t) => {
  const app = await buildCompatApp(t, { max: 2, timeWindow: 500 }, (app) => {
    app.get('/expoential-backoff', { config: { rateLimit: { max: 2, timeWindow: 500, exponentialBackoff: true } } }, ok)
  })
  const get = async (): Promise<LightMyRequestResponse> => await app.inject('/expoential-backoff')
  let res = await get()
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', '1'])
  res = await get()
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', '0'])
  for (let i = 0; i < 2; i++) {
    res = await get()
    t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [429, '2', '0'])
    t.same(res.json(), tooMany('1 second'))
  }
  mock.timers.tick(1000)
  res = await get()
  t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', '1'], 'the block (500 ms, then 1000 ms) is over')
})

t.test('Global Exponential Backoff: each rejection doubles the wait (1 s, 1 s, 2 s, 4 s for a 500 ms window)', async (t) => {
  const app = await buildCompatApp(t, { max: 2, timeWindow: 500, exponentialBackoff: true }, (app) => {
    app.get('/expoential-backoff-global', { config: { rateLimit: { max: 2, timeWindow: 500 } } }, ok)
  })
  const get = async (): Promise<LightMyRequestResponse> => await app.inject('/expoential-backoff-global')
  t.same((await get()).headers['x-ratelimit-remaining'], '1')
  t.same((await get()).headers['x-ratelimit-remaining'], '0')
  const waits: Array<[number, unknown, unknown, unknown]> = []
  for (let i = 0; i < 4; i++) {
    const res = await get()
    waits.push([res.statusCode, res.headers['retry-after'], res.headers['x-ratelimit-reset'], res.json()])
  }
  t.same(waits, [
    [429, '1', '1', tooMany('1 second')],
    [429, '1', '1', tooMany('1 second')],
    [429, '2', '2', tooMany('2 seconds')],
    [429, '4', '4', tooMany('4 seconds')]
  ])
})

t.test('the block runs from the last rejection: waiting less than it is another rejection, twice as long', async (t) => {
  const exceeded: string[] = []
  const app = await buildCompatApp(t, { max: 1, timeWindow: 1000, exponentialBackoff: true, onExceeded: (_req, key) => { exceeded.push(key) } })
  t.same(await statuses(app, 3), [200, 429, 429], 'blocked 1 s, then 2 s')
  mock.timers.tick(1999)
  const res = await app.inject('/')
  t.same([res.statusCode, res.headers['retry-after']], [429, '4'], 'one ms short of the end: blocked again, for 4 s from now')
  mock.timers.tick(4000)
  t.same(await statuses(app, 2), [200, 429], 'after the block: a fresh window, and the count starts over at 1 s')
  t.equal((await app.inject('/')).headers['retry-after'], '2')
  t.equal(exceeded.length, 5)
})

t.test('exponentialBackoff with ban: the rejection after `ban` others is a 403, for as long as its block; onBanReach once', async (t) => {
  const banned: string[] = []
  const app = await buildCompatApp(t, { max: 1, timeWindow: 1000, exponentialBackoff: true, ban: 1, onBanReach: (_req, key) => { banned.push(key) } })
  const answers: Array<[number, unknown]> = []
  for (let i = 0; i < 4; i++) {
    const res = await app.inject('/')
    answers.push([res.statusCode, res.headers['retry-after']])
  }
  t.same(answers, [[200, undefined], [429, '1'], [403, '2'], [403, '4']])
  t.same(banned, ['127.0.0.1'], 'once per ban')
  mock.timers.tick(4000)
  t.same(await statuses(app, 2), [200, 429], 'the ban ended with its block: a fresh count')
})

t.test('continueExceeding wins over exponentialBackoff, as before; with ban > 0 the rejection after `ban` others bans', async (t) => {
  const app = await buildCompatApp(t, { max: 1, timeWindow: 1000, exponentialBackoff: true, continueExceeding: true, ban: 2 })
  const answers: Array<[number, unknown]> = []
  for (let i = 0; i < 5; i++) {
    const res = await app.inject('/')
    answers.push([res.statusCode, res.headers['retry-after']])
  }
  t.same(answers, [[200, undefined], [429, '1'], [429, '1'], [403, '1'], [403, '1']], 'each rejection one window from it, the third a 403')
  mock.timers.tick(999)
  t.same(await statuses(app, 1), [403], 'the ban is renewed by each request')
  mock.timers.tick(1000)
  t.same(await statuses(app, 2), [200, 429], 'a window after the last rejection: a fresh count')
})

t.test('exponentialBackoff needs a fixed timeWindow: a coded error at registration', async (t) => {
  for (const options of [{ exponentialBackoff: true, timeWindow: () => 1000 }, { global: false, exponentialBackoff: true, timeWindow: () => 1000 }]) {
    const app = Fastify()
    await t.rejects(async () => {
      await app.register(compat, options as RateLimitPluginOptions)
      app.get('/', { config: { rateLimit: { max: 1 } } }, ok)
      await app.ready()
    }, { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /'exponentialBackoff' with a 'timeWindow' function/ })
    await app.close()
  }
})

t.test('Redis: exponentialBackoff decided in Redis, at plugin and route level', async (t) => {
  const redis = new Redis(await sharedRedisUrl())
  t.teardown(() => { redis.disconnect() })
  const app = Fastify()
  // An hour's window: the server's clock runs for real, and the test must not cross a window.
  const HOUR = 3_600_000
  await app.register(compat, { redis, nameSpace: uniqueNamespace('compat-backoff'), max: 2, timeWindow: HOUR, exponentialBackoff: true })
  app.get('/', ok)
  app.get('/route', { config: { rateLimit: { max: 1, timeWindow: HOUR, exponentialBackoff: true } } }, ok)
  t.teardown(async () => { await app.close() })
  for (const remaining of ['1', '0']) {
    const res = await app.inject('/')
    t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining']], [200, '2', remaining])
  }
  const hours = (n: number): string => `${n} hour${n === 1 ? '' : 's'}`
  for (const n of [1, 2, 4]) {
    const res = await app.inject('/')
    t.same([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['retry-after'], res.headers['content-type']],
      [429, '2', '0', String(n * 3600), 'application/json; charset=utf-8'])
    t.same(res.json(), tooMany(hours(n)))
  }
  t.equal((await app.inject('/route')).statusCode, 200)
  const waits = []
  for (let i = 0; i < 3; i++) waits.push((await app.inject('/route')).headers['retry-after'])
  t.same(waits, ['3600', '7200', '14400'], 'the route limit doubles on its own')
})
