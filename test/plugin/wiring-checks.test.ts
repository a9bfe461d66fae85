/**
 * Wiring mistakes that would otherwise pass in silence: routes the plugin never saw (registered
 * after the routes, or without await), proxies Fastify does not trust, and limits that fail at
 * declaration name their route.
 */
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import t from 'tap'
import { InMemoryBackend, traffik } from '../../lib/index.js'

interface LogLine { level: number, code?: string, route?: string, msg: string }

/** A Fastify app whose log lines (warn and above) are collected as objects. */
function appWithLogs (options: FastifyServerOptions = {}): { app: FastifyInstance, logs: LogLine[] } {
  const logs: LogLine[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
      callback()
    }
  })
  return { app: Fastify({ ...options, logger: { level: 'warn', stream } }), logs }
}

const ok = async (): Promise<string> => 'ok'
const coded = (logs: LogLine[], code: string): LogLine[] => logs.filter((line) => line.code === code)

t.test('the plugin registered after a limited route: its requests fail with TRAFFIK_ERR_UNSEEN_ROUTE, logged once', async (t) => {
  const { app, logs } = appWithLogs()
  app.get('/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
  app.get('/free', ok)
  await app.register(traffik)
  t.teardown(async () => { await app.close() })
  const first = await app.inject('/limited')
  t.equal(first.statusCode, 500)
  t.equal(first.json().code, 'TRAFFIK_ERR_UNSEEN_ROUTE')
  t.match(first.json().message, /Route 'GET \/limited' has config\.rateLimit, but fastify-traffik never saw the route.*await app\.register\(traffik, options\)/)
  t.equal((await app.inject('/limited')).statusCode, 500, 'every request, not only the first')
  t.equal((await app.inject('/free')).statusCode, 200, 'a route without limits is fine')
  const errors = coded(logs, 'TRAFFIK_ERR_UNSEEN_ROUTE')
  t.equal(errors.length, 1, 'logged once per route')
  t.equal(errors[0]!.level, 50, 'at error')
  t.equal(errors[0]!.route, 'GET /limited')
})

t.test('register without await: the routes declared after it are caught the same way', async (t) => {
  const { app } = appWithLogs()
  app.register(traffik) // the mistake under test: no await
  app.get('/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
  t.teardown(async () => { await app.close() })
  const res = await app.inject('/limited')
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'TRAFFIK_ERR_UNSEEN_ROUTE')
})

t.test('global limits that never reached a route declared before the plugin are caught too', async (t) => {
  const { app } = appWithLogs()
  app.get('/early', ok)
  app.get('/opted-out', { config: { rateLimit: false } }, ok)
  await app.register(traffik, { global: { rate: '1/min' } })
  app.get('/late', ok)
  t.teardown(async () => { await app.close() })
  const early = await app.inject('/early')
  t.equal(early.statusCode, 500)
  t.match(early.json().message, /Route 'GET \/early' has the plugin's global limits/)
  t.equal((await app.inject('/opted-out')).statusCode, 200, 'rateLimit: false opts out whatever the order')
  t.same([(await app.inject('/late')).statusCode, (await app.inject('/late')).statusCode], [200, 429], 'routes the plugin saw are limited')
})

t.test("validate.unseenRoutes: 'warn' lets the route run unlimited and warns once", async (t) => {
  const { app, logs } = appWithLogs()
  app.get('/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
  await app.register(traffik, { validate: { unseenRoutes: 'warn' } })
  t.teardown(async () => { await app.close() })
  t.same([(await app.inject('/limited')).statusCode, (await app.inject('/limited')).statusCode], [200, 200])
  const warnings = coded(logs, 'TRAFFIK_WARN_UNSEEN_ROUTE')
  t.equal(warnings.length, 1)
  t.equal(warnings[0]!.level, 40)
})

t.test("validate.unseenRoutes: 'off' (or validate: false) checks nothing", async (t) => {
  for (const validate of [{ unseenRoutes: 'off' as const }, false as const]) {
    const { app, logs } = appWithLogs()
    app.get('/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
    await app.register(traffik, { validate })
    t.same([(await app.inject('/limited')).statusCode, (await app.inject('/limited')).statusCode], [200, 200])
    t.same(logs, [])
    await app.close()
  }
})

t.test('a plugin registered before every route adds no check at all', async (t) => {
  const { app } = appWithLogs()
  await app.register(traffik)
  app.get('/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
  await app.ready()
  t.teardown(async () => { await app.close() })
  t.notMatch(app.printRoutes({ includeHooks: true }), /onRequest/, 'no onRequest hook on any route')
  t.same([(await app.inject('/limited')).statusCode, (await app.inject('/limited')).statusCode], [200, 429])
})

t.test('routes declared before the plugin without limits are judged once and pass', async (t) => {
  const { app, logs } = appWithLogs()
  app.get('/health', ok)
  app.post('/items', ok)
  await app.register(traffik)
  app.get('/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject('/health')).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/items' })).statusCode, 200)
  t.same([(await app.inject('/limited')).statusCode, (await app.inject('/limited')).statusCode], [200, 429], 'a route the plugin saw is limited')
  t.equal((await app.inject('/missing')).statusCode, 404, 'the not-found handler passes')
  t.same(logs, [])
})

t.test('a route in an encapsulated context the plugin does not reach is outside the check', async (t) => {
  const { app, logs } = appWithLogs()
  await app.register(async (api) => {
    await api.register(traffik)
    api.get('/api/limited', { config: { rateLimit: { rate: '1/min' } } }, ok)
  })
  await app.register(async (other) => {
    other.get('/other', { config: { rateLimit: { rate: '1/min' } } }, ok)
  })
  t.teardown(async () => { await app.close() })
  t.same([(await app.inject('/api/limited')).statusCode, (await app.inject('/api/limited')).statusCode], [200, 429])
  t.same([(await app.inject('/other')).statusCode, (await app.inject('/other')).statusCode], [200, 200], 'documented: the plugin limits only its own context and the contexts below it')
  t.same(logs, [])
})

t.test('validate is checked at registration', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ unseenRoutes: 'loud' }, /validate\.unseenRoutes/],
    [{ proxyHeader: true }, /validate\.proxyHeader/],
    ['yes', /validate/],
    [{ proxyHeaders: 'no' }, /validate\.proxyHeaders/]
  ]
  for (const [validate, message] of cases) {
    await t.rejects(async () => { await Fastify().register(traffik, { validate: validate as never }) }, { code: 'TRAFFIK_ERR_INVALID_OPTION', message })
  }
})

t.test('X-Forwarded-For while Fastify does not trust proxies: one coded warning', async (t) => {
  const { app, logs } = appWithLogs()
  await app.register(traffik)
  app.get('/', { config: { rateLimit: { rate: '10/min' } } }, ok)
  t.teardown(async () => { await app.close() })
  await app.inject('/')
  t.same(coded(logs, 'TRAFFIK_WARN_FORWARDED_UNTRUSTED'), [], 'no forwarding header, no warning')
  for (let i = 0; i < 3; i++) await app.inject({ url: '/', headers: { 'x-forwarded-for': `203.0.113.${i}` } })
  await app.inject({ url: '/', headers: { forwarded: 'for=203.0.113.9' } })
  const warnings = coded(logs, 'TRAFFIK_WARN_FORWARDED_UNTRUSTED')
  t.equal(warnings.length, 1, 'once per app, not per request')
  t.equal(warnings[0]!.level, 40)
  t.match(warnings[0]!.msg, /trustProxy/)
})

t.test("Forwarded alone triggers it too, and limits with their own identifier don't", async (t) => {
  const { app, logs } = appWithLogs()
  await app.register(traffik)
  app.get('/keyed', { config: { rateLimit: { rate: '10/min', identifier: () => 'k' } } }, ok)
  app.get('/by-ip', { config: { rateLimit: { rate: '10/min' } } }, ok)
  t.teardown(async () => { await app.close() })
  await app.inject({ url: '/keyed', headers: { forwarded: 'for=203.0.113.9' } })
  t.same(coded(logs, 'TRAFFIK_WARN_FORWARDED_UNTRUSTED'), [], 'an identifier that is not the IP needs no proxy')
  await app.inject({ url: '/by-ip', headers: { forwarded: 'for=203.0.113.9' } })
  t.equal(coded(logs, 'TRAFFIK_WARN_FORWARDED_UNTRUSTED').length, 1)
})

t.test('trustProxy: true with X-Forwarded-For warns that clients pick their own key; a hop count does not', async (t) => {
  for (const [trustProxy, expected] of [[true, 1], [1, 0], ['127.0.0.1', 0]] as const) {
    const { app, logs } = appWithLogs({ trustProxy: trustProxy as never })
    await app.register(traffik)
    app.get('/', { config: { rateLimit: { rate: '10/min' } } }, ok)
    await app.inject({ url: '/', headers: { 'x-forwarded-for': '203.0.113.1' } })
    await app.inject({ url: '/', headers: { 'x-forwarded-for': '203.0.113.2' } })
    t.equal(coded(logs, 'TRAFFIK_WARN_TRUST_PROXY_ALL').length, expected, `trustProxy: ${String(trustProxy)}`)
    t.equal(coded(logs, 'TRAFFIK_WARN_FORWARDED_UNTRUSTED').length, 0)
    await app.close()
  }
})

t.test('validate.proxyHeaders: false silences the proxy warnings', async (t) => {
  const { app, logs } = appWithLogs()
  await app.register(traffik, { validate: { proxyHeaders: false } })
  app.get('/', { config: { rateLimit: { rate: '10/min' } } }, ok)
  t.teardown(async () => { await app.close() })
  await app.inject({ url: '/', headers: { 'x-forwarded-for': '203.0.113.1' } })
  t.same(logs, [])
})

t.test('a bad limit fails the route declaration with its code and the route in the message', async (t) => {
  const app = Fastify()
  await app.register(traffik)
  t.throws(() => app.get('/typo', { config: { rateLimit: { rate: '1/s', identifer: () => 'x' } as never } }, ok), {
    code: 'TRAFFIK_ERR_INVALID_OPTION',
    message: /^Route 'GET \/typo': Invalid option 'throttle\.identifer'/,
    route: 'GET /typo'
  })
  t.throws(() => app.post('/rate', { config: { rateLimit: [{ rate: '1/s' }, { rate: '10/fortnight' }] } }, ok), {
    code: 'TRAFFIK_ERR_INVALID_RATE',
    message: /^Route 'POST \/rate': Invalid rate/
  })
  t.throws(() => app.get('/shape', { config: { rateLimit: true as never } }, ok), {
    code: 'TRAFFIK_ERR_INVALID_ROUTE_CONFIG',
    message: /route 'GET \/shape'/
  })
  await app.close()
})

t.test('a Throttle shared by two routes fails each declaration with its own route name', async (t) => {
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend() })
  t.throws(() => app.get('/a', { config: { rateLimit: { rate: '1/s', strategy: 'fixed' as never } } }, ok), { message: /^Route 'GET \/a': / })
  t.throws(() => app.get('/b', { config: { rateLimit: { rate: '1/s', strategy: 'fixed' as never } } }, ok), { message: /^Route 'GET \/b': / })
  await app.close()
})
