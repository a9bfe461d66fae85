import Fastify from 'fastify'
import t from 'tap'
import { traffik } from '../../lib/index.js'
import { buildApp } from '../helpers/build-app.js'

const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })

function rateLimitHeaders (headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.includes('ratelimit') || name === 'retry-after' || name.startsWith('x-quota')))
}

t.test('draft-6: RateLimit-Policy plus RateLimit-Limit / -Remaining / -Reset; retry-after on 429', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '2/min', headers: 'draft-6' } } }, ok)
  })
  clock.advance(15_000)
  const first = await app.inject('/')
  t.same(rateLimitHeaders(first.headers), {
    'ratelimit-policy': '2;w=60', 'ratelimit-limit': '2', 'ratelimit-remaining': '1', 'ratelimit-reset': '45'
  })
  await app.inject('/')
  const rejected = await app.inject('/')
  t.equal(rejected.statusCode, 429)
  t.same(rateLimitHeaders(rejected.headers), {
    'ratelimit-policy': '2;w=60', 'ratelimit-limit': '2', 'ratelimit-remaining': '0', 'ratelimit-reset': '45', 'retry-after': '45'
  })
})

t.test('draft-7: RateLimit-Policy and one RateLimit field', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/10s', headers: 'draft-7' } } }, ok)
  })
  const first = await app.inject('/')
  t.same(rateLimitHeaders(first.headers), { 'ratelimit-policy': '1;w=10', ratelimit: 'limit=1, remaining=0, reset=10' })
  const rejected = await app.inject('/')
  t.equal(rejected.statusCode, 429)
  t.same(rateLimitHeaders(rejected.headers), { 'ratelimit-policy': '1;w=10', ratelimit: 'limit=1, remaining=0, reset=10', 'retry-after': '10' })
})

t.test('draft-8: named policy in structured-field syntax, tied to the RateLimit field', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '100/min', headers: 'draft-8' } } }, ok)
  })
  clock.advance(20_500)
  const res = await app.inject('/')
  t.same(rateLimitHeaders(res.headers), { 'ratelimit-policy': '"100/min";q=100;w=60', ratelimit: '"100/min";r=99;t=40' })
  t.comment(`draft-8 sample: RateLimit-Policy: ${res.headers['ratelimit-policy']} | RateLimit: ${res.headers.ratelimit}`)
})

t.test('draft-8 on a rejection, odd windows, and sub-second windows advertised conservatively', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/odd', { config: { rateLimit: { rate: '1/90s', headers: 'draft-8' } } }, ok)
    app.get('/fast', { config: { rateLimit: { rate: '5/500ms', headers: 'draft-8' } } }, ok)
  })
  await app.inject('/odd')
  const rejected = await app.inject('/odd')
  t.equal(rejected.statusCode, 429)
  t.same(rateLimitHeaders(rejected.headers), { 'ratelimit-policy': '"1/90s";q=1;w=90', ratelimit: '"1/90s";r=0;t=90', 'retry-after': '90' })
  const fast = await app.inject('/fast')
  t.same(rateLimitHeaders(fast.headers), { 'ratelimit-policy': '"5/500ms";q=5;w=1', ratelimit: '"5/500ms";r=4;t=1' })
})

t.test('with several limits the policy header describes the reported (most restrictive) limit', async (t) => {
  const { app, clock } = await buildApp(t, { defaults: { headers: 'draft-8' } }, (app) => {
    app.get('/', { config: { rateLimit: [{ uid: 'burst', rate: '3/s' }, { uid: 'hourly', rate: '4/hour' }] } }, ok)
  })
  const first = await app.inject('/')
  t.same(rateLimitHeaders(first.headers), { 'ratelimit-policy': '"3/s";q=3;w=1', ratelimit: '"3/s";r=2;t=1' }, 'burst has the least left (2 < 3)')
  await app.inject('/')
  clock.advance(1000)
  const third = await app.inject('/')
  t.same(rateLimitHeaders(third.headers), { 'ratelimit-policy': '"4/hour";q=4;w=3600', ratelimit: '"4/hour";r=1;t=3599' }, 'now the hourly limit is the tighter one')
  await app.inject('/')
  const rejected = await app.inject('/')
  t.equal(rejected.statusCode, 429)
  t.same(rateLimitHeaders(rejected.headers), { 'ratelimit-policy': '"4/hour";q=4;w=3600', ratelimit: '"4/hour";r=0;t=3599', 'retry-after': '3599' })
})

t.test('rate functions: the policy follows the rate in force for each request', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: (req) => req.headers['x-tier'] === 'gold' ? '50/min' : '5/min', headers: 'draft-7' } } }, ok)
  })
  t.equal((await app.inject('/')).headers['ratelimit-policy'], '5;w=60')
  t.equal((await app.inject({ url: '/', headers: { 'x-tier': 'gold' } })).headers['ratelimit-policy'], '50;w=60')
  t.equal((await app.inject('/')).headers['ratelimit-policy'], '5;w=60')
})

t.test('values are integers for every strategy-like answer, including token buckets mid-refill', async (t) => {
  const { TokenBucket } = await import('../../lib/index.js')
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '3/10s', strategy: new TokenBucket(), headers: 'draft-6' } } }, ok)
  })
  for (let i = 0; i < 4; i++) await app.inject('/')
  clock.advance(1234)
  const res = await app.inject('/')
  for (const name of ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after']) {
    const value = res.headers[name]
    if (value !== undefined) t.match(String(value), /^\d+$/, `${name}=${String(value)} is an integer`)
  }
})

t.test('custom header maps: always / throttled, field names, static values, auto retry-after', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', {
      config: {
        rateLimit: {
          rate: '2/min',
          headers: {
            'X-Quota-Left': { value: 'remaining', when: 'always' },
            'x-quota-limit': 'limit',
            'x-quota-window': 'window',
            'x-quota-reset-ms': { value: 'reset-ms' },
            'x-quota-policy': { static: 'standard tier', when: 'always' },
            'x-quota-exceeded': { static: 'true', when: 'throttled' },
            'x-quota-wait-ms': 'retry-after-ms'
          }
        }
      }
    }, ok)
  })
  clock.advance(59_000)
  const allowed = await app.inject('/')
  t.same(rateLimitHeaders(allowed.headers), {
    'x-quota-left': '1', 'x-quota-limit': '2', 'x-quota-window': '60', 'x-quota-reset-ms': '1000', 'x-quota-policy': 'standard tier'
  }, 'names are lower-cased; throttled-only headers are absent')
  await app.inject('/')
  const rejected = await app.inject('/')
  t.equal(rejected.statusCode, 429)
  t.same(rateLimitHeaders(rejected.headers), {
    'x-quota-left': '0',
    'x-quota-limit': '2',
    'x-quota-window': '60',
    'x-quota-reset-ms': '1000',
    'x-quota-policy': 'standard tier',
    'x-quota-exceeded': 'true',
    'x-quota-wait-ms': '1000',
    'retry-after': '1'
  })
})

t.test('a custom map that names retry-after controls it itself', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min', headers: { 'retry-after': 'retry-after', 'x-left': 'remaining' } } } }, ok)
  })
  await app.inject('/')
  const rejected = await app.inject('/')
  t.equal(rejected.headers['retry-after'], '60')
  t.same(rateLimitHeaders(rejected.headers), { 'retry-after': '60' })
  t.equal(rejected.headers['x-left'], '0')
})

t.test('headers: false sends nothing, not even retry-after', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min', headers: false } } }, ok)
  })
  await app.inject('/')
  const rejected = await app.inject('/')
  t.equal(rejected.statusCode, 429)
  t.same(rateLimitHeaders(rejected.headers), {})
})

t.test('a request that can never pass gets no retry-after in any format', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/d8', { config: { rateLimit: { rate: '0/min', headers: 'draft-8' } } }, ok)
    app.get('/custom', { config: { rateLimit: { rate: '2/min', cost: 3, headers: { 'x-wait': 'retry-after-ms' } } } }, ok)
  })
  const blocked = await app.inject('/d8')
  t.equal(blocked.statusCode, 429)
  t.notOk(blocked.headers['retry-after'])
  const custom = await app.inject('/custom')
  t.equal(custom.statusCode, 429)
  t.notOk(custom.headers['retry-after'])
  t.notOk(custom.headers['x-wait'])
})

t.test('bad header options fail at registration with TRAFFIK_ERR_INVALID_OPTION', async (t) => {
  const app = Fastify()
  await app.register(traffik)
  t.teardown(async () => { await app.close() })
  const route = (headers: unknown) => () => app.get(`/r${Math.random()}`, { config: { rateLimit: { rate: '1/s', headers: headers as never } } }, ok)
  const bad: Array<[unknown, RegExp]> = [
    ['draft-9', /headers/],
    [true, /headers/],
    [[], /headers/],
    [{}, /headers/],
    [{ 'bad name': 'limit' }, /header names/],
    [{ 'x-a': 'remainder' }, /x-a/],
    [{ 'x-a': { value: 'limit', when: 'sometimes' } }, /when/],
    [{ 'x-a': { value: 'retry-after', when: 'always' } }, /throttled/],
    [{ 'x-a': { static: 'line\nbreak' } }, /static/],
    [{ 'x-a': { static: 'a', value: 'limit' } }, /exactly one/],
    [{ 'x-a': { value: 'limit', extra: 1 } }, /extra/],
    [{ 'x-a': 'limit', 'X-A': 'remaining' }, /case/]
  ]
  for (const [headers, message] of bad) {
    t.throws(route(headers), { code: 'TRAFFIK_ERR_INVALID_OPTION', message }, JSON.stringify(headers))
  }
  t.doesNotThrow(route({ 'x-a': { value: 'retry-after', when: 'throttled' } }))
})

t.test("a bad header style in the plugin's defaults fails at registration, before any route", async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await t.rejects(async () => { await app.register(traffik, { defaults: { headers: 'draft-9' as never } }) }, { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /headers/ })
})
