import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { createThrottle, DeniedError, InMemoryBackend, traffik, type TraffikPluginOptions } from '../../lib/index.js'

const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })

/** A real in-memory backend that counts its decisions. */
class CountingBackend extends InMemoryBackend {
  calls = 0
  override evaluate (...args: Parameters<InMemoryBackend['evaluate']>): ReturnType<InMemoryBackend['evaluate']> {
    this.calls++
    return super.evaluate(...args)
  }
}

async function build (t: Test, options: TraffikPluginOptions, routes: (app: FastifyInstance) => void, fastifyOptions = {}): Promise<{ app: FastifyInstance, backend: CountingBackend }> {
  const backend = new CountingBackend()
  const app = Fastify(fastifyOptions)
  await app.register(traffik, { backend, ...options })
  routes(app)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, backend }
}

const from = (remoteAddress: string, url = '/'): { url: string, remoteAddress: string } => ({ url, remoteAddress })

t.test('a throttle deny list refuses with the coded 403 and never touches the backend', async (t) => {
  const { app, backend } = await build(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '5/min', lists: { deny: ['10.0.0.0/8', '2001:db8::/32', '203.0.113.7'] } } } }, ok)
  })
  for (const ip of ['10.1.2.3', '::ffff:10.9.9.9', '2001:db8:1::1', '203.0.113.7']) {
    const res = await app.inject(from(ip))
    t.equal(res.statusCode, 403, ip)
    t.same(res.json(), { statusCode: 403, code: 'TRAFFIK_ERR_DENIED', error: 'Forbidden', message: 'Access denied' })
    t.notOk(res.headers['x-ratelimit-limit'], 'no rate-limit headers')
  }
  t.equal(backend.calls, 0, 'denied requests touch no backend')
  const res = await app.inject(from('203.0.113.8'))
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-ratelimit-remaining'], '4')
  t.equal(backend.calls, 1)
})

t.test('an allow list exempts: no headers, no backend call, never limited', async (t) => {
  const { app, backend } = await build(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min', lists: { allow: ['127.0.0.1', '192.168.0.0/16', '::1'] } } } }, ok)
  })
  for (let i = 0; i < 3; i++) {
    for (const ip of ['127.0.0.1', '192.168.40.2', '0:0::1']) {
      const res = await app.inject(from(ip))
      t.equal(res.statusCode, 200)
      t.notOk(res.headers['x-ratelimit-limit'])
    }
  }
  t.equal(backend.calls, 0)
  t.equal((await app.inject(from('8.8.8.8'))).statusCode, 200)
  t.equal((await app.inject(from('8.8.8.8'))).statusCode, 429)
})

t.test('deny wins over allow; lists from sync and async functions; a returned array is compiled once', async (t) => {
  let calls = 0
  const blocked = ['198.51.100.0/24']
  const { app } = await build(t, {}, (app) => {
    app.get('/', {
      config: {
        rateLimit: {
          rate: '1/min',
          lists: {
            deny: (_request, value) => { calls++; return value === '198.51.100.9' ? ['198.51.100.9'] : blocked },
            allow: async (request, value) => value.startsWith('198.51.100.') || request.headers['x-internal'] === 'yes'
          }
        }
      }
    }, ok)
  })
  t.equal((await app.inject(from('198.51.100.9'))).statusCode, 403, 'on both lists: refused')
  t.equal((await app.inject(from('198.51.100.10'))).statusCode, 403)
  t.equal((await app.inject(from('198.51.101.1'))).statusCode, 200)
  t.equal((await app.inject(from('198.51.101.1'))).statusCode, 429)
  const internal = await app.inject({ ...from('198.51.101.1'), headers: { 'x-internal': 'yes' } })
  t.equal(internal.statusCode, 200, 'the async allow predicate exempts')
  t.equal(calls, 5)
})

t.test("match: 'identifier' compares the throttle's identifier; match as a function", async (t) => {
  const { app, backend } = await build(t, {}, (app) => {
    app.get('/a', {
      config: {
        rateLimit: {
          rate: '1/min',
          identifier: async (request) => String(request.headers['x-user'] ?? 'anonymous'),
          lists: { match: 'identifier', allow: ['service-account'], deny: ['mallory'] }
        }
      }
    }, ok)
    app.get('/b', { config: { rateLimit: { rate: '1/min', lists: { match: (request) => String(request.headers['user-agent']), deny: ['BadBot/1.0'] } } } }, ok)
  })
  const as = (user: string): object => ({ url: '/a', headers: { 'x-user': user } })
  t.equal((await app.inject(as('mallory'))).statusCode, 403)
  for (let i = 0; i < 3; i++) t.equal((await app.inject(as('service-account'))).statusCode, 200)
  t.equal((await app.inject(as('alice'))).statusCode, 200)
  t.equal((await app.inject(as('alice'))).statusCode, 429)
  const bad = await app.inject({ url: '/b', headers: { 'user-agent': 'BadBot/1.0' } })
  t.equal(bad.statusCode, 403, bad.body)
  const curl = await app.inject({ url: '/b', headers: { 'user-agent': 'curl/8' } })
  t.equal(curl.statusCode, 200, curl.body)
  t.equal(backend.calls, 3, 'alice twice and curl once')
})

t.test('deniedStatus and onDenied answer the refusal (sync, async, sending, throwing)', async (t) => {
  const { app } = await build(t, {}, (app) => {
    app.get('/status', { config: { rateLimit: { rate: '5/min', lists: { deny: ['127.0.0.1'], deniedStatus: 451 } } } }, ok)
    app.get('/body', { config: { rateLimit: { rate: '5/min', lists: { deny: ['127.0.0.1'], onDenied: () => ({ blocked: true }) } } } }, ok)
    app.get('/async', { config: { rateLimit: { rate: '5/min', lists: { deny: ['127.0.0.1'], deniedStatus: 404, onDenied: async (_request, reply) => { await reply.send('gone') } } } } }, ok)
    app.get('/throws', { config: { rateLimit: { rate: '5/min', lists: { deny: ['127.0.0.1'], onDenied: () => { throw new Error('boom') } } } } }, ok)
    app.get('/nothing', { config: { rateLimit: { rate: '5/min', lists: { deny: ['127.0.0.1'], onDenied: () => undefined } } } }, ok)
  })
  const status = await app.inject('/status')
  t.equal(status.statusCode, 451)
  t.equal(status.json().code, 'TRAFFIK_ERR_DENIED')
  const body = await app.inject('/body')
  t.equal(body.statusCode, 403)
  t.same(body.json(), { blocked: true })
  const sent = await app.inject('/async')
  t.equal(sent.statusCode, 404, sent.body)
  t.equal(sent.body, 'gone')
  const throws = await app.inject('/throws')
  t.equal(throws.statusCode, 403, 'a throwing onDenied keeps the refusal status')
  t.equal(throws.json().message, 'boom')
  const nothing = await app.inject('/nothing')
  t.equal(nothing.statusCode, 403, 'returning nothing falls back to the coded error')
  t.equal(nothing.json().code, 'TRAFFIK_ERR_DENIED')
})

t.test("the plugin's lists cover every route, limited or not; allowed clients skip every throttle", async (t) => {
  const { app, backend } = await build(t, {
    lists: { deny: ['10.0.0.0/8'], allow: async () => ['192.0.2.0/24'] },
    global: { rate: '1/min' }
  }, (app) => {
    app.get('/', ok)
    app.get('/open', { config: { rateLimit: false } }, ok)
  })
  t.equal((await app.inject(from('10.0.0.1', '/open'))).statusCode, 403, 'an unlimited route refuses too')
  t.equal((await app.inject(from('10.0.0.1', '/missing'))).statusCode, 403, 'and the not-found handler')
  for (let i = 0; i < 3; i++) {
    const res = await app.inject(from('192.0.2.5'))
    t.equal(res.statusCode, 200)
    t.notOk(res.headers['x-ratelimit-limit'])
  }
  const hook = app.throttle.create({ rate: '1/min' })
  t.equal(backend.calls, 0)
  t.equal((await app.inject(from('198.51.100.1'))).statusCode, 200)
  t.equal((await app.inject(from('198.51.100.1'))).statusCode, 429)
  t.ok(hook.uid.length > 0)
})

t.test('the plugin list hook: onDenied, a throwing match function, an async deny', async (t) => {
  const { app } = await build(t, {
    lists: { match: (request) => String(request.headers['x-key'] ?? ''), deny: async (_r, key) => key === 'bad', onDenied: (_request, reply) => reply.send({ nope: true }) }
  }, (app) => { app.get('/', ok) })
  const denied = await app.inject({ url: '/', headers: { 'x-key': 'bad' } })
  t.equal(denied.statusCode, 403)
  t.same(denied.json(), { nope: true })
  t.equal((await app.inject({ url: '/', headers: { 'x-key': 'good' } })).statusCode, 200)

  const broken = await build(t, { lists: { match: () => { throw new Error('no key') }, deny: ['x'] } }, (app) => { app.get('/', ok) })
  t.equal((await broken.app.inject('/')).statusCode, 500, 'a throwing match function fails the request, never the process')
  const wrong = await build(t, { lists: { match: (() => 42) as never, deny: ['x'] } }, (app) => { app.get('/', ok) })
  t.equal((await wrong.app.inject('/')).json().code, 'TRAFFIK_ERR_INVALID_OPTION')
})

t.test('a list function returning something else fails the request with a coded error', async (t) => {
  const { app } = await build(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min', lists: { deny: (() => 'nope') as never } } } }, ok)
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'TRAFFIK_ERR_INVALID_OPTION')
})

t.test('bad list options fail at registration with a coded error naming the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /'lists'/],
    [{}, /at least one of allow, deny/],
    [{ allow: ['x'], typo: 1 }, /lists\.typo/],
    [{ deny: ['10.0.0.0/40'] }, /lists\.deny\[\]/],
    [{ deny: 'x' }, /lists\.deny/],
    [{ deny: ['x'], match: 'header' }, /lists\.match/],
    [{ deny: ['x'], deniedStatus: 200 }, /lists\.deniedStatus/],
    [{ deny: ['x'], onDenied: 'no' }, /lists\.onDenied/]
  ]
  for (const [lists, message] of cases) {
    t.throws(() => createThrottle({ uid: 'x', rate: '1/s', lists: lists as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message }, JSON.stringify(lists))
  }
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await t.rejects(async () => { await app.register(traffik, { lists: { match: 'identifier', deny: ['x'] } }) }, { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /lists\.match/ })
})

t.test('throttle.hit refuses a denied client with DeniedError; reset ignores the lists', async (t) => {
  const throttle = createThrottle({ uid: 'api', rate: '1/min', lists: { match: 'identifier', deny: ['mallory'] }, identifier: (r) => String(r.headers?.['x-user']) })
  const mallory = { ip: '127.0.0.1', headers: { 'x-user': 'mallory' } } as never
  await t.rejects(throttle.hit(mallory), DeniedError)
  await t.resolves(throttle.reset(mallory), 'an operator may clear any client')
  const alice = { ip: '127.0.0.1', headers: { 'x-user': 'alice' } } as never
  t.equal((await throttle.hit(alice)).allowed, true)
})
