/**
 * Outside requests (jobs, scripts, workers): `backend.run(fn)` makes a backend active for
 * `dynamicBackend` throttles inside `fn` (AsyncLocalStorage). Contexts nest, unwind when `fn`
 * returns or throws, survive awaits, and concurrent tasks never see each other's backend.
 * The first two cases are the multi-tenant and nested-context examples of Traffik's documentation.
 */
import Fastify from 'fastify'
import t from 'tap'
import { adoptThrottle } from '../../lib/throttle/throttle.js'
import { createThrottle, InMemoryBackend, traffik, type ThrottleBackend } from '../../lib/index.js'
import { activeBackend } from '../../lib/backend.js'

const job = {} // a request-like object: no ip, no throttleBackend (the identifier below names the client)
const tick = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 1)) }

function dynamicThrottle (uid: string, rate = '2/min') {
  return createThrottle({ uid, rate, dynamicBackend: true, identifier: () => 'client' })
}

async function allowed (throttle: ReturnType<typeof dynamicThrottle>): Promise<boolean> {
  return (await throttle.hit(job)).allowed
}

t.test('nested contexts switch the backend and unwind to the outer one (Traffik docs: testing with nested contexts)', async (t) => {
  const throttle = dynamicThrottle('test:dynamic')
  const backendA = new InMemoryBackend()
  const backendB = new InMemoryBackend()
  await backendA.run(async () => {
    t.equal(await allowed(throttle), true, 'A: hit 1')
    t.equal(await allowed(throttle), true, 'A: hit 2')
    await backendB.run(async () => {
      t.equal(await allowed(throttle), true, 'B: hit 1, a fresh counter')
      t.equal(await allowed(throttle), true, 'B: hit 2')
      t.equal(await allowed(throttle), false, 'B: hit 3 is throttled')
    })
    t.equal(activeBackend.getStore(), backendA, 'back in A once the inner run returned')
    t.equal(await allowed(throttle), false, "A's counter is still at 2: the third hit is throttled")
  })
  t.equal(activeBackend.getStore(), undefined, 'no backend is active outside run()')
})

t.test('multi-tenant jobs: each tier counts in its own backend (Traffik docs: full multi-tenant example)', async (t) => {
  const enterprise = new InMemoryBackend({ namespace: 'enterprise' })
  const premium = new InMemoryBackend({ namespace: 'premium' })
  const free = new InMemoryBackend({ namespace: 'free' })
  const backendOf: Record<string, ThrottleBackend> = { enterprise, premium, free }
  const quota = createThrottle({ uid: 'api:quota', rate: '3/hour', dynamicBackend: true, identifier: (request) => (request as unknown as { tenant: string }).tenant })
  const tenants = [
    { tenant: 'acme', tier: 'enterprise' }, { tenant: 'globex', tier: 'premium' }, { tenant: 'initech', tier: 'premium' }, { tenant: 'hooli', tier: 'free' }
  ]
  const results = new Map<string, boolean[]>()
  // Every tenant's job runs concurrently, each inside its tier's backend.
  await Promise.all(tenants.map(async ({ tenant, tier }) => {
    await backendOf[tier]!.run(async () => {
      const answers: boolean[] = []
      for (let i = 0; i < 4; i++) {
        await tick()
        answers.push((await quota.hit({ tenant } as never)).allowed)
      }
      results.set(tenant, answers)
    })
  }))
  for (const { tenant } of tenants) t.same(results.get(tenant), [true, true, true, false], `${tenant}: 3 of 4`)
  t.same([enterprise.size, premium.size, free.size], [1, 2, 1], 'each tier backend holds its own tenants only')
})

t.test('the active backend survives awaits, timers and promise chains', async (t) => {
  const backend = new InMemoryBackend()
  const seen = await backend.run(async () => {
    const stores: unknown[] = [activeBackend.getStore()]
    await tick()
    stores.push(activeBackend.getStore())
    await new Promise<void>((resolve) => setImmediate(() => { stores.push(activeBackend.getStore()); resolve() }))
    await Promise.resolve().then(() => stores.push(activeBackend.getStore()))
    return stores
  })
  t.same(seen.map((s) => s === backend), [true, true, true, true])
})

t.test('concurrent tasks in different contexts never see each other\'s backend', async (t) => {
  const backends = Array.from({ length: 8 }, () => new InMemoryBackend())
  const mismatches: number[] = []
  await Promise.all(backends.map(async (backend, i) => {
    await backend.run(async () => {
      for (let step = 0; step < 20; step++) {
        await tick()
        if (activeBackend.getStore() !== backend) mismatches.push(i)
        await backends[(i + 1) % backends.length]!.run(async () => {
          await tick()
          if (activeBackend.getStore() !== backends[(i + 1) % backends.length]) mismatches.push(i)
        })
        if (activeBackend.getStore() !== backend) mismatches.push(i)
      }
    })
  }))
  t.same(mismatches, [], 'every task saw its own backend at every step')
})

t.test('a throwing fn unwinds its context; run() returns what fn returns, sync or async', async (t) => {
  const outer = new InMemoryBackend()
  const inner = new InMemoryBackend()
  t.equal(outer.run(() => 42), 42, 'sync value')
  t.equal(await outer.run(async () => 'async'), 'async')
  await outer.run(async () => {
    t.throws(() => inner.run(() => { throw new Error('boom') }), /boom/)
    t.equal(activeBackend.getStore(), outer, 'back to outer after a sync throw')
    await t.rejects(inner.run(async () => { await tick(); throw new Error('late boom') }), /late boom/)
    t.equal(activeBackend.getStore(), outer, 'back to outer after an async rejection')
  })
})

t.test('precedence: a pinned backend, then request.throttleBackend, then the run() context, then the default', async (t) => {
  const pinned = new InMemoryBackend()
  const fromRequest = new InMemoryBackend()
  const fromContext = new InMemoryBackend()
  const fallback = new InMemoryBackend()
  const dynamic = createThrottle({ uid: 'd', rate: '10/min', dynamicBackend: true, identifier: () => 'c' })
  adoptThrottle(dynamic, fallback, undefined) // what the plugin does with its default backend
  const fixed = createThrottle({ uid: 'p', rate: '10/min', backend: pinned, identifier: () => 'c' })
  t.equal(dynamic.backendFor({}), fallback, 'no request backend and no context: the default')
  fromContext.run(() => {
    t.equal(dynamic.backendFor({}), fromContext, 'the run() context')
    t.equal(dynamic.backendFor({ throttleBackend: fromRequest }), fromRequest, "the request's backend wins over the context")
    t.equal(fixed.backendFor({ throttleBackend: fromRequest }), pinned, 'a pinned backend wins over both')
  })
  t.equal(dynamic.backendFor({ throttleBackend: null }), fallback, 'null is no backend')
})

t.test('inside a Fastify app: routes use the request backend, jobs use run(), both through the same throttle', async (t) => {
  const tenant = new InMemoryBackend()
  const app = Fastify()
  await app.register(traffik, { backends: [tenant], resolveBackend: (request) => request.headers['x-tenant'] === 't1' ? tenant : null })
  const shared = app.throttle.create({ uid: 'shared', rate: '2/min', dynamicBackend: true, identifier: () => 'client' })
  app.get('/', { config: { rateLimit: shared } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  // A background job of tenant t1 spends one unit in the tenant's backend...
  t.equal((await tenant.run(async () => await shared.hit({}))).allowed, true)
  // ...so the tenant's requests have one left, while requests of others use the default backend.
  const headers = { 'x-tenant': 't1' }
  t.same([(await app.inject({ url: '/', headers })).statusCode, (await app.inject({ url: '/', headers })).statusCode], [200, 429])
  t.same([(await app.inject('/')).statusCode, (await app.inject('/')).statusCode], [200, 200])
})
