/**
 * Dynamic backends in requests: `resolveBackend` (sync or async) or the app's own onRequest hook
 * sets `request.throttleBackend`; throttles with `dynamicBackend: true` count there, falling back
 * to the plugin's default backend; pinned throttles ignore it.
 */
import Fastify, { type FastifyRequest } from 'fastify'
import t from 'tap'
import { createThrottle, InMemoryBackend, RedisBackend, traffik, type ThrottleBackend } from '../../lib/index.js'
import { freePort } from '../../scripts/support/services.js'

function tierOf (request: FastifyRequest): string | undefined {
  const tier = request.headers['x-tier']
  return typeof tier === 'string' ? tier : undefined
}

async function statuses (app: ReturnType<typeof Fastify>, url: string, tier: string | undefined, n: number): Promise<number[]> {
  const answers: number[] = []
  for (let i = 0; i < n; i++) answers.push((await app.inject({ url, headers: tier === undefined ? {} : { 'x-tier': tier } })).statusCode)
  return answers
}

for (const kind of ['sync', 'async'] as const) {
  t.test(`resolveBackend (${kind}) routes each request's counters to its backend`, async (t) => {
    const gold = new InMemoryBackend()
    const silver = new InMemoryBackend()
    const fallback = new InMemoryBackend()
    const byTier: Record<string, ThrottleBackend> = { gold, silver }
    const app = Fastify()
    await app.register(traffik, {
      backend: fallback,
      backends: [gold, silver],
      resolveBackend: kind === 'sync'
        ? (request) => byTier[tierOf(request) ?? '']
        : async (request) => { await new Promise((resolve) => setImmediate(resolve)); return byTier[tierOf(request) ?? ''] }
    })
    app.get('/dynamic', { config: { rateLimit: { uid: 'dyn', rate: '2/min', dynamicBackend: true } } }, async () => ({ ok: true }))
    app.get('/which', { config: { rateLimit: false } }, async (request) => ({
      backend: request.throttleBackend === gold ? 'gold' : request.throttleBackend === silver ? 'silver' : String(request.throttleBackend)
    }))
    app.get('/pinned', { config: { rateLimit: { uid: 'pinned', rate: '2/min' } } }, async () => ({ ok: true }))
    t.teardown(async () => { await app.close() })

    t.same(await statuses(app, '/dynamic', 'gold', 3), [200, 200, 429], 'gold: its own budget')
    t.same(await statuses(app, '/dynamic', 'silver', 3), [200, 200, 429], 'silver: a separate budget for the same client')
    t.same(await statuses(app, '/dynamic', undefined, 3), [200, 200, 429], 'no tier: resolveBackend returns undefined, the default backend counts')
    t.equal((await app.inject({ url: '/which', headers: { 'x-tier': 'gold' } })).json().backend, 'null', 'a route with no dynamic limit never asks resolveBackend')

    for (const [name, backend] of Object.entries({ gold, silver, fallback })) {
      t.equal(backend.size, 1, `${name} holds exactly one counter`)
    }
    t.same(await statuses(app, '/pinned', 'gold', 3), [200, 200, 429], 'a pinned throttle ignores request.throttleBackend')
    t.equal(gold.size, 1, 'the pinned throttle did not write to the request backend')
    t.equal(fallback.size, 2, 'it counted in the default backend')
  })
}

t.test("the app's own onRequest hook may set request.throttleBackend", async (t) => {
  const tenant = new InMemoryBackend()
  const app = Fastify()
  await app.register(traffik, { backends: [tenant] })
  app.addHook('onRequest', async (request) => {
    if (request.headers['x-tenant'] === 'acme') request.throttleBackend = tenant
  })
  app.get('/', { config: { rateLimit: { rate: '1/min', dynamicBackend: true } } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject({ url: '/', headers: { 'x-tenant': 'acme' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/', headers: { 'x-tenant': 'acme' } })).statusCode, 429)
  t.equal((await app.inject('/')).statusCode, 200, 'another tenant, the default backend: a fresh budget')
  t.equal(tenant.size, 1)
})

t.test('hook: onRequest enforces with the resolved backend too (resolution runs first)', async (t) => {
  const tenant = new InMemoryBackend()
  const app = Fastify()
  await app.register(traffik, { hook: 'onRequest', backends: [tenant], resolveBackend: () => tenant })
  app.get('/', { config: { rateLimit: { rate: '1/min', dynamicBackend: true } } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  t.same([(await app.inject('/')).statusCode, (await app.inject('/')).statusCode], [200, 429])
  t.equal(tenant.size, 1, 'counted in the resolved backend, not the default')
})

t.test('backend + dynamicBackend throws TRAFFIK_ERR_CONFLICTING_OPTIONS at construction', async (t) => {
  const backend = new InMemoryBackend()
  t.throws(() => createThrottle({ uid: 'x', rate: '1/s', backend, dynamicBackend: true }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  const app = Fastify()
  await app.register(traffik)
  t.throws(() => app.throttle.create({ rate: '1/s', backend, dynamicBackend: true }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  t.throws(() => app.get('/', { config: { rateLimit: { rate: '1/s', backend, dynamicBackend: true } } }, async () => ({})), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  await app.close()
  const withDefaults = Fastify()
  await t.rejects(async () => { await withDefaults.register(traffik, { global: { rate: '1/s', backend, dynamicBackend: true } }).ready() }, { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' }, 'also in global limits, at registration')
  t.doesNotThrow(() => createThrottle({ uid: 'y', rate: '1/s', backend, dynamicBackend: false }), 'dynamicBackend: false with a backend is fine')
})

t.test('resolveBackend failures fail the request through Fastify, never the process', async (t) => {
  const app = Fastify()
  await app.register(traffik, {
    resolveBackend: (request) => {
      if (request.headers['x-case'] === 'throws') throw new Error('tenant lookup failed')
      if (request.headers['x-case'] === 'rejects') return Promise.reject(new Error('tenant lookup failed'))
      if (request.headers['x-case'] === 'garbage') return 'redis' as never
      return null
    }
  })
  app.get('/', { config: { rateLimit: { rate: '10/min', dynamicBackend: true } } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject({ url: '/', headers: { 'x-case': 'throws' } })).statusCode, 500)
  t.equal((await app.inject({ url: '/', headers: { 'x-case': 'rejects' } })).statusCode, 500)
  const garbage = await app.inject({ url: '/', headers: { 'x-case': 'garbage' } })
  t.equal(garbage.statusCode, 500)
  t.equal(garbage.json().code, 'TRAFFIK_ERR_INVALID_OPTION', 'a value that is not a backend is named')
  t.equal((await app.inject('/')).statusCode, 200, 'null falls back to the default backend')
})

t.test("a resolved backend that fails (closed, or unreachable) is answered by the throttle's onError", async (t) => {
  const closed = new InMemoryBackend()
  await closed.initialize()
  await closed.close() // refuses every call with TRAFFIK_ERR_BACKEND_CLOSED, and must stay closed
  const unreachable = new RedisBackend(`redis://127.0.0.1:${await freePort()}`, { connectTimeoutMs: 200 })
  const byTier: Record<string, ThrottleBackend> = { closed, unreachable }
  const app = Fastify()
  await app.register(traffik, { resolveBackend: (request) => byTier[tierOf(request) ?? ''] })
  app.get('/open', { config: { rateLimit: { rate: '10/min', dynamicBackend: true, onError: 'allow' } } }, async () => ({ ok: true }))
  app.get('/closed', { config: { rateLimit: { rate: '10/min', dynamicBackend: true } } }, async () => ({ ok: true }))
  app.get('/raise', { config: { rateLimit: { rate: '10/min', dynamicBackend: true, onError: 'raise' } } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close(); await unreachable.close() })
  for (const tier of ['closed', 'unreachable']) {
    const headers = { 'x-tier': tier }
    t.equal((await app.inject({ url: '/open', headers })).statusCode, 200, `${tier}: onError 'allow' fails open`)
    t.equal((await app.inject({ url: '/closed', headers })).statusCode, 429, `${tier}: onError 'throttle' (default) fails closed`)
    const raised = await app.inject({ url: '/raise', headers })
    t.equal(raised.statusCode, 503, `${tier}: onError 'raise' surfaces the backend error`)
    t.match(raised.json().code, /^TRAFFIK_ERR_BACKEND/)
  }
  t.equal(closed.closed, true, 'resolveBackend did not reopen a closed backend')
})

/** Authentication the way apps do it: a preHandler that sets request.account from a header. */
declare module 'fastify' {
  interface FastifyRequest { account?: { tenant: string } }
}

t.test('resolveBackend runs when the limit runs: after preHandler authentication, root or route level', async (t) => {
  for (const where of ['root', 'route'] as const) {
    const acme = new InMemoryBackend()
    const fallback = new InMemoryBackend()
    const app = Fastify()
    const authenticate = async (request: FastifyRequest): Promise<void> => {
      const token = request.headers.authorization
      if (token === 'Bearer acme') request.account = { tenant: 'acme' }
    }
    await app.register(traffik, {
      backend: fallback,
      backends: [acme],
      resolveBackend: (request) => request.account?.tenant === 'acme' ? acme : null
    })
    if (where === 'root') app.addHook('preHandler', authenticate)
    app.get('/data', {
      ...(where === 'route' ? { preHandler: authenticate } : {}),
      config: { rateLimit: { rate: '1/min', dynamicBackend: true, identifier: (request) => request.account?.tenant ?? 'anonymous' } }
    }, async (request) => ({ inTenantBackend: request.throttleBackend === acme }))
    const headers = { authorization: 'Bearer acme' }
    const first = await app.inject({ url: '/data', headers })
    t.same(first.json(), { inTenantBackend: true }, `${where}: the tenant known from auth chose the backend`)
    t.equal((await app.inject({ url: '/data', headers })).statusCode, 429)
    t.equal(acme.size, 1, `${where}: counted in the tenant's backend`)
    t.equal(fallback.size, 0, `${where}: nothing in the default backend`)
    await app.close()
  }
})

t.test("resolveBackendAt: 'onRequest' resolves every request up front (the tenant must be known in onRequest)", async (t) => {
  const acme = new InMemoryBackend()
  const app = Fastify()
  const seen: string[] = []
  await app.register(traffik, {
    backends: [acme],
    resolveBackendAt: 'onRequest',
    resolveBackend: (request) => { seen.push(request.url); return request.headers['x-tenant'] === 'acme' ? acme : null }
  })
  app.get('/free', { config: { rateLimit: false } }, async (request) => ({ inTenantBackend: request.throttleBackend === acme }))
  t.teardown(async () => { await app.close() })
  t.same((await app.inject({ url: '/free', headers: { 'x-tenant': 'acme' } })).json(), { inTenantBackend: true }, 'set even where no limit runs')
  t.same(seen, ['/free'])
  await t.rejects(async () => { await Fastify().register(traffik, { resolveBackendAt: 'preHandler' as never }) }, { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /resolveBackendAt/ })
})

t.test('resolveBackend is asked once per request, however many dynamic limits the route has', async (t) => {
  const acme = new InMemoryBackend()
  let calls = 0
  const app = Fastify()
  await app.register(traffik, {
    backends: [acme],
    resolveBackend: async () => { calls++; await new Promise((resolve) => setImmediate(resolve)); return acme }
  })
  app.get('/', { config: { rateLimit: [{ rate: '5/min', dynamicBackend: true }, { rate: '50/hour', dynamicBackend: true }] } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject('/')).statusCode, 200)
  t.equal(calls, 1)
  t.equal(acme.size, 2, 'both limits counted in the resolved backend')
})

t.test("dynamicBackend: 'required' fails with TRAFFIK_ERR_NO_BACKEND instead of counting in the default backend", async (t) => {
  const acme = new InMemoryBackend()
  const fallback = new InMemoryBackend()
  const app = Fastify()
  await app.register(traffik, {
    backend: fallback,
    backends: [acme],
    resolveBackend: (request) => request.headers['x-tenant'] === 'acme' ? acme : null
  })
  app.get('/', { config: { rateLimit: { rate: '5/min', dynamicBackend: 'required' } } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject({ url: '/', headers: { 'x-tenant': 'acme' } })).statusCode, 200)
  const orphan = await app.inject('/')
  t.equal(orphan.statusCode, 500)
  t.equal(orphan.json().code, 'TRAFFIK_ERR_NO_BACKEND')
  t.match(orphan.json().message, /Throttle 'GET:\/' requires a backend/)
  t.equal(fallback.size, 0, 'nothing was counted in the default backend')
  const job = app.throttle.create({ uid: 'job', rate: '1/min', dynamicBackend: 'required', identifier: () => 'job' })
  await t.rejects(job.hit({}), { code: 'TRAFFIK_ERR_NO_BACKEND' }, 'a job outside backend.run() has no backend either')
  t.equal((await acme.run(async () => await job.hit({}))).allowed, true, 'inside backend.run() it has one')
  t.throws(() => createThrottle({ uid: 'bad', rate: '1/s', dynamicBackend: 'yes' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /dynamicBackend/ })
  t.throws(() => createThrottle({ uid: 'both', rate: '1/s', backend: acme, dynamicBackend: 'required' }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
})
