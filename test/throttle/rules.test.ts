import Fastify from 'fastify'
import t from 'tap'
import { InMemoryBackend, bypassIf, throttleIf, traffik } from '../../lib/index.js'
import { globToRegExp } from '../../lib/throttle/rules.js'
import { buildApp } from '../helpers/build-app.js'

const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })

t.test('globs are anchored: * is one segment, ** any number', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['/api/*', '/api/x', true],
    ['/api/*', '/api/x/y', false],
    ['/api/*', '/api', false],
    ['/api/*', '/api/', false],
    ['/api/*', '/v2/api/x', false],
    ['/api/**', '/api', true],
    ['/api/**', '/api/x', true],
    ['/api/**', '/api/x/y/z', true],
    ['/api/**', '/apix', false],
    ['/api/**/edit', '/api/edit', true],
    ['/api/**/edit', '/api/a/b/edit', true],
    ['/api/**/edit', '/api/a/b/editor', false],
    ['/api/v*/users', '/api/v1/users', true],
    ['/api/v*/users', '/api/v1/usersX', false],
    ['/api/v*/users', '/api/v1/x/users', false],
    ['/health', '/health', true],
    ['/health', '/healthz', false],
    ['/files/*.json', '/files/a.json', true],
    ['/files/*.json', '/files/ajson', false],
    ['/', '/', true],
    ['/', '/x', false]
  ]
  for (const [glob, path, expected] of cases) t.equal(globToRegExp(glob).test(path), expected, `${glob} vs ${path}`)
})

t.test('bypassIf by path: no headers, no backend call; the query string is ignored', async (t) => {
  class CountingBackend extends InMemoryBackend {
    calls = 0
    override evaluate (...args: Parameters<InMemoryBackend['evaluate']>): ReturnType<InMemoryBackend['evaluate']> {
      this.calls++
      return super.evaluate(...args)
    }
  }
  const backend = new CountingBackend()
  const app = Fastify()
  await app.register(traffik, { backend, global: { rate: '1/min', rules: [bypassIf({ path: ['/health', '/static/**'] })] } })
  app.get('/health', ok)
  app.get('/static/*', ok)
  app.get('/work', ok)
  t.teardown(async () => { await app.close() })
  for (const url of ['/health', '/health?verbose=1', '/static/css/site.css', '/health']) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, url)
    t.notOk(res.headers['x-ratelimit-limit'], `${url}: no headers`)
  }
  t.equal(backend.calls, 0, 'bypassed requests touch no backend')
  t.equal((await app.inject('/work?x=1')).statusCode, 200)
  t.equal((await app.inject('/work')).statusCode, 429)
  t.equal(backend.calls, 2)
})

t.test('throttleIf by method: only writes are limited', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.route({ method: ['GET', 'POST'], url: '/items', handler: ok, config: { rateLimit: { rate: '1/min', rules: [throttleIf({ methods: ['post'] })] } } })
  })
  for (let i = 0; i < 3; i++) t.equal((await app.inject('/items')).statusCode, 200, 'GET is never limited')
  t.notOk((await app.inject('/items')).headers['x-ratelimit-limit'])
  t.equal((await app.inject({ method: 'POST', url: '/items' })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/items' })).statusCode, 429)
})

t.test('every throttleIf must match and no bypassIf may match; criteria inside one rule all must match', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.all('/api/*', {
      config: {
        rateLimit: {
          rate: '1/min',
          identifier: (req) => String(req.headers['x-user'] ?? req.ip),
          rules: [
            throttleIf({ path: '/api/*' }),
            throttleIf({ methods: ['GET', 'POST'] }),
            bypassIf({ methods: 'GET', path: '/api/public' }),
            bypassIf({ when: (req) => req.headers['x-role'] === 'admin' })
          ]
        }
      }
    }, ok)
  })
  const status = async (method: string, url: string, user: string, role?: string): Promise<number> =>
    (await app.inject({ method: method as 'GET', url, headers: { 'x-user': user, ...(role ? { 'x-role': role } : {}) } })).statusCode
  t.equal(await status('DELETE', '/api/a', 'u1'), 200)
  t.equal(await status('DELETE', '/api/a', 'u1'), 200, 'DELETE fails the method gate: never limited')
  t.equal(await status('GET', '/api/public', 'u2'), 200)
  t.equal(await status('GET', '/api/public', 'u2'), 200, 'GET /api/public is bypassed')
  t.equal(await status('POST', '/api/public', 'u3'), 200)
  t.equal(await status('POST', '/api/public', 'u3'), 429, 'POST /api/public: the bypass needs both method and path')
  t.equal(await status('GET', '/api/x', 'u4', 'admin'), 200)
  t.equal(await status('GET', '/api/x', 'u4', 'admin'), 200, 'admins are bypassed by predicate')
  t.equal(await status('GET', '/api/x', 'u4'), 200)
  t.equal(await status('GET', '/api/x', 'u4'), 429)
})

t.test('async predicates and a predicate-only shorthand; predicates run after cheap rules', async (t) => {
  const calls: string[] = []
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/*', {
      config: {
        rateLimit: {
          rate: '1/min',
          rules: [
            throttleIf(async (req) => { calls.push(req.url); return req.headers['x-metered'] === 'yes' }),
            bypassIf({ path: '/free/**' })
          ]
        }
      }
    }, ok)
  })
  t.equal((await app.inject('/free/a')).statusCode, 200)
  t.equal((await app.inject('/free/a')).statusCode, 200)
  t.same(calls, [], 'the path bypass decided before the predicate ran')
  t.equal((await app.inject('/x')).statusCode, 200)
  t.equal((await app.inject('/x')).statusCode, 200, 'not metered: the gate does not match')
  t.equal((await app.inject({ url: '/x', headers: { 'x-metered': 'yes' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/x', headers: { 'x-metered': 'yes' } })).statusCode, 429)
  t.equal(calls.length, 4)
})

t.test('a predicate that throws fails the request (500), not the process', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min', rules: [bypassIf(() => { throw new Error('boom') })] } } }, ok)
    app.get('/async', { config: { rateLimit: { rate: '1/min', rules: [bypassIf(async () => { throw new Error('boom') })] } } }, ok)
  })
  t.equal((await app.inject('/')).statusCode, 500)
  t.equal((await app.inject('/async')).statusCode, 500)
})

t.test("rules in the plugin's defaults apply to every throttle, together with a throttle's own", async (t) => {
  const { app } = await buildApp(t, { defaults: { rules: [bypassIf({ when: (req) => req.headers['x-internal'] === '1' })] } }, (app) => {
    app.get('/a', { config: { rateLimit: { rate: '1/min' } } }, ok)
    app.get('/b', { config: { rateLimit: { rate: '1/min', rules: [throttleIf({ methods: 'GET' })] } } }, ok)
  })
  const made = app.throttle.create({ uid: 'made', rate: '1/min' })
  for (const url of ['/a', '/b']) {
    for (let i = 0; i < 3; i++) t.equal((await app.inject({ url, headers: { 'x-internal': '1' } })).statusCode, 200, `${url}: internal bypassed`)
    t.equal((await app.inject(url)).statusCode, 200)
    t.equal((await app.inject(url)).statusCode, 429, `${url}: others limited`)
  }
  const internal = { ip: '1.1.1.1', headers: { 'x-internal': '1' }, method: 'GET', url: '/job' }
  t.equal((await made.hit(internal as never)).limit, Infinity, 'create() inherits the default rules: bypassed')
})

t.test('bad rules fail at registration', async (t) => {
  t.throws(() => throttleIf({}), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /at least one/ })
  t.throws(() => throttleIf({ path: 'api/*' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /path/ })
  t.throws(() => throttleIf({ methods: [] }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /methods/ })
  t.throws(() => bypassIf({ when: 'yes' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /when/ })
  t.throws(() => bypassIf({ paths: '/x' } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /paths/ })
  const app = Fastify()
  await app.register(traffik)
  t.teardown(async () => { await app.close() })
  t.throws(() => app.get('/r', { config: { rateLimit: { rate: '1/s', rules: [{ path: '/x' }] as never } } }, ok), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /rules/ })
  t.throws(() => app.get('/s', { config: { rateLimit: { rate: '1/s', rules: bypassIf({ path: '/x' }) as never } } }, ok), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /rules/ })
})
