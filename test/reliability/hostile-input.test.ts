/**
 * Hostile request input gets a defined answer, never a crash: identifiers that throw or return
 * non-strings (500 with a coded error), empty and huge identifiers, IPv6 and IPv4-mapped
 * addresses (through inject and over real sockets), spoofed X-Forwarded-For with and without
 * trustProxy, huge header values, and long identifiers on Redis and memcached (hashed keys,
 * exact limits).
 */
import { request as httpRequest } from 'node:http'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type InjectOptions } from 'fastify'
import t, { type Test } from 'tap'
import {
  InMemoryBackend, MemcachedBackend, RedisBackend, traffik,
  type DecisionEvent, type ThrottleBackend, type ThrottleOptions
} from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => { unhandled.push(reason) })

interface Probe { app: FastifyInstance, keys: string[] }

/** An app with one limited route `/` and a `/health` route without limits; records decision keys. */
async function probe (t: Test, limit: Partial<ThrottleOptions>, options: { fastify?: FastifyServerOptions, backend?: ThrottleBackend } = {}): Promise<Probe> {
  const keys: string[] = []
  const app = Fastify(options.fastify)
  await app.register(traffik, {
    backend: options.backend ?? new InMemoryBackend(),
    onDecision: (event: DecisionEvent) => { if (event.type !== 'error') keys.push(event.key) }
  })
  app.get('/', { config: { rateLimit: { rate: '2/min', ...limit } } }, async (request) => ({ ip: request.ip }))
  app.get('/health', { config: { rateLimit: false } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, keys }
}

async function statuses (app: FastifyInstance, count: number, options: InjectOptions | string = '/'): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) out.push((await app.inject(options)).statusCode)
  return out
}

t.test('identifier functions that misbehave fail that request with a 500, never the process', async (t) => {
  const cases: Array<{ name: string, identifier: (request: unknown) => unknown, code?: string }> = [
    { name: 'throws', identifier: () => { throw new Error('identifier exploded') } },
    { name: 'rejects', identifier: async () => { throw new Error('async identifier exploded') } },
    { name: 'returns a number', identifier: () => 42, code: 'TRAFFIK_ERR_INVALID_IDENTIFIER' },
    { name: 'returns undefined', identifier: () => undefined, code: 'TRAFFIK_ERR_INVALID_IDENTIFIER' },
    { name: 'returns null', identifier: () => null, code: 'TRAFFIK_ERR_INVALID_IDENTIFIER' },
    { name: 'returns an object', identifier: () => ({ user: 1 }), code: 'TRAFFIK_ERR_INVALID_IDENTIFIER' },
    { name: 'returns an empty string', identifier: () => '', code: 'TRAFFIK_ERR_INVALID_IDENTIFIER' },
    { name: 'resolves a symbol other than EXEMPTED', identifier: async () => Symbol('x'), code: 'TRAFFIK_ERR_INVALID_IDENTIFIER' }
  ]
  for (const c of cases) {
    const { app, keys } = await probe(t, { identifier: c.identifier as ThrottleOptions['identifier'] })
    const res = await app.inject('/')
    t.equal(res.statusCode, 500, `identifier ${c.name}: 500`)
    if (c.code !== undefined) t.equal(res.json().code, c.code, `identifier ${c.name}: ${c.code}`)
    t.notOk(res.headers['x-ratelimit-limit'], `identifier ${c.name}: no rate-limit headers`)
    t.same(keys, [], `identifier ${c.name}: no backend decision`)
    t.equal((await app.inject('/health')).statusCode, 200, `identifier ${c.name}: the app keeps serving`)
  }
})

t.test('rate and cost functions that throw or return bad values: 500 with a coded error', async (t) => {
  const cases: Array<{ name: string, limit: Partial<ThrottleOptions>, code?: string }> = [
    { name: 'rate throws', limit: { rate: () => { throw new Error('no rate') } } },
    { name: 'rate returns garbage', limit: { rate: () => 'lots' as never }, code: 'TRAFFIK_ERR_INVALID_DYNAMIC_RATE' },
    { name: 'cost throws', limit: { cost: () => { throw new Error('no cost') } } },
    { name: 'cost returns -1', limit: { cost: () => -1 }, code: 'TRAFFIK_ERR_INVALID_COST' },
    { name: 'cost returns NaN', limit: { cost: async () => NaN }, code: 'TRAFFIK_ERR_INVALID_COST' }
  ]
  for (const c of cases) {
    const { app } = await probe(t, c.limit)
    const res = await app.inject('/')
    t.equal(res.statusCode, 500, `${c.name}: 500`)
    if (c.code !== undefined) t.equal(res.json().code, c.code, `${c.name}: ${c.code}`)
    t.equal((await app.inject('/health')).statusCode, 200, `${c.name}: the app keeps serving`)
  }
})

t.test('huge identifiers are hashed: bounded keys, exact limits, distinct clients stay distinct', async (t) => {
  const { app, keys } = await probe(t, { identifier: (request) => String(request.headers['x-user']) })
  const long = 'u'.repeat(10_240)
  const other = 'u'.repeat(10_239) + 'v'
  t.same(await statuses(app, 3, { url: '/', headers: { 'x-user': long } }), [200, 200, 429], 'a 10 kB identifier gets the exact limit')
  t.same(await statuses(app, 2, { url: '/', headers: { 'x-user': other } }), [200, 200], 'one differing character is another client')
  t.ok(keys.every((key) => key.length < 400), `keys stay short (longest ${Math.max(...keys.map((k) => k.length))} characters)`)
  t.match(keys[0], /sha256:[0-9a-f]{64}/, 'the long identifier was replaced by its hash')
})

t.test('IPv6 through inject: /64 masking and IPv4-mapped addresses count as IPv4', async (t) => {
  const { app, keys } = await probe(t, {})
  const at = (remoteAddress: string) => ({ url: '/', remoteAddress })
  t.same(await statuses(app, 1, at('2001:db8:1:2::1')), [200])
  t.same(await statuses(app, 1, at('2001:DB8:1:2:ffff:ffff:ffff:ffff')), [200], 'same /64, other host')
  t.same(await statuses(app, 1, at('2001:db8:1:2::abcd')), [429], 'the /64 shares one budget')
  t.same(await statuses(app, 1, at('2001:db8:1:3::1')), [200], 'the next /64 is another client')
  t.same(await statuses(app, 1, at('fe80::1%eth0')), [200], 'a zone index does not break parsing')
  t.same(await statuses(app, 2, at('::ffff:192.0.2.7')), [200, 200])
  t.same(await statuses(app, 1, at('192.0.2.7')), [429], 'IPv4-mapped and plain IPv4 are one client')
  t.same(await statuses(app, 1, at('not-an-address')), [200], 'an unparsable address is used as it is')
  t.ok(keys.includes('GET:/:{2001:0db8:0001:0002::/64}'), 'the key holds the /64')
  t.ok(keys.includes('GET:/:{192.0.2.7}'), 'the key holds the IPv4 address')
})

/** GET `/` over a real socket from `localAddress` to `host`. */
async function realGet (host: string, port: number, localAddress?: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path: '/', localAddress, agent: false }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.on('error', reject)
    req.end()
  })
}

function portOf (app: FastifyInstance): number {
  const address = app.server.address()
  return typeof address === 'object' && address !== null ? address.port : 0
}

t.test('real sockets: IPv4 arriving as ::ffff:127.0.0.1, and ::1', async (t) => {
  // An IPv6 socket bound to the IPv4-mapped loopback sees IPv4 clients as ::ffff:127.0.0.1,
  // as a dual-stack server does, while staying on loopback.
  const mapped = await probe(t, {})
  await mapped.app.listen({ host: '::ffff:127.0.0.1', port: 0 })
  const port = portOf(mapped.app)
  const v4 = [await realGet('127.0.0.1', port), await realGet('127.0.0.1', port), await realGet('127.0.0.1', port)]
  t.same(v4, [200, 200, 429], 'IPv4 through an IPv6 socket is limited as one client')
  t.ok(mapped.keys.length > 0 && mapped.keys.every((k) => k === 'GET:/:{127.0.0.1}'), `::ffff:127.0.0.1 counted as 127.0.0.1 (keys: ${mapped.keys.join(' ')})`)

  const v6 = await probe(t, {})
  try {
    await v6.app.listen({ host: '::1', port: 0 })
  } catch (error) {
    t.comment(`no IPv6 loopback on this machine (${(error as Error).message}); the inject cases cover the masking`)
    return
  }
  const port6 = portOf(v6.app)
  t.same([await realGet('::1', port6), await realGet('::1', port6), await realGet('::1', port6)], [200, 200, 429], '::1 is limited')
  t.ok(v6.keys.every((k) => k === 'GET:/:{0000:0000:0000:0000::/64}'), '::1 is masked to its /64')
})

t.test('X-Forwarded-For: ignored without trustProxy, honoured only from the trusted proxy', async (t) => {
  const untrusted = await probe(t, {})
  const spoof = (i: number, remoteAddress = '198.51.100.9') => ({ url: '/', remoteAddress, headers: { 'x-forwarded-for': `203.0.113.${i}` } })
  const noTrust = [0, 1, 2].map(async (i) => (await untrusted.app.inject(spoof(i))).statusCode)
  t.same(await Promise.all(noTrust), [200, 200, 429], 'without trustProxy rotating the header does not escape the limit')
  t.ok(untrusted.keys.every((k) => k === 'GET:/:{198.51.100.9}'), 'every request counted as the socket address')

  const trusted = await probe(t, {}, { fastify: { trustProxy: '10.0.0.1' } })
  const viaProxy: number[] = []
  for (let i = 0; i < 3; i++) viaProxy.push((await trusted.app.inject(spoof(i, '10.0.0.1'))).statusCode)
  t.same(viaProxy, [200, 200, 200], 'through the trusted proxy each forwarded client has its own budget')
  t.same(await statuses(trusted.app, 2, spoof(0, '10.0.0.1')), [200, 429], 'and that budget is enforced')
  const direct: number[] = []
  for (let i = 10; i < 13; i++) direct.push((await trusted.app.inject(spoof(i, '198.51.100.77'))).statusCode)
  t.same(direct, [200, 200, 429], 'the same header from anywhere else is ignored')
})

t.test('huge header values: defined answers', async (t) => {
  const { app, keys } = await probe(t, {}, { fastify: { trustProxy: true } })
  const huge = 'x'.repeat(12_000)
  const res = await app.inject({ url: '/', headers: { 'x-forwarded-for': huge, 'user-agent': huge } })
  t.equal(res.statusCode, 200, 'a 12 kB X-Forwarded-For (trusted) is a client like any other')
  t.ok(keys.every((k) => k.length < 400), 'its key is hashed')
  const mixed = await app.inject({ url: '/', headers: { 'x-forwarded-for': `::ffff:1.2.3.4, ${'f'.repeat(3000)}:`.repeat(2) } })
  t.equal(mixed.statusCode, 200, 'a malformed IPv6-looking header is answered')

  // Over a real socket Node itself refuses headers above its limit (16 kB) before any hook runs.
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = portOf(app)
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', headers: { 'x-huge': 'y'.repeat(20_000) }, agent: false }, (r) => {
      r.resume()
      r.on('end', () => { resolve(r.statusCode ?? 0) })
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(status, 431, 'a 20 kB header over a socket: 431 from Node, the plugin never sees it')
  t.equal((await app.inject('/health')).statusCode, 200)
})

for (const kind of ['redis', 'memcached'] as const) {
  t.test(`${kind}: 400-character and non-ASCII identifiers are hashed and limited exactly`, async (t) => {
    const namespace = uniqueNamespace('hi')
    const backend = kind === 'redis'
      ? new RedisBackend(await sharedRedisUrl(), { namespace, persistent: false, timeoutMs: 2000 })
      : new MemcachedBackend(await sharedMemcachedServers(), { namespace, persistent: false, timeoutMs: 2000 })
    const { app } = await probe(t, { identifier: (request) => decodeURIComponent(String(request.headers['x-user'])), rate: '3/min', uid: 'long-ids' }, { backend })
    const ids = [
      'a'.repeat(400),
      'a'.repeat(399) + 'b',
      'b'.repeat(240), // fits the identifier bound but not memcached's 250-byte key
      'ünïcødé-' + 'é'.repeat(120) // 250+ bytes in UTF-8
    ]
    for (const id of ids) {
      const headers = { 'x-user': encodeURIComponent(id) }
      t.same(await statuses(app, 4, { url: '/', headers }), [200, 200, 200, 429], `${id.length} characters (${id.slice(0, 6)}...): exactly 3 allowed`)
    }
  })
}

t.test('resolveBackend functions that misbehave fail that request, never the process', async (t) => {
  const cases: Array<{ name: string, resolve: (request: unknown) => unknown, status: number, code?: string }> = [
    { name: 'throws', resolve: () => { throw new Error('tenant lookup exploded') }, status: 500 },
    { name: 'rejects', resolve: async () => { throw new Error('tenant lookup exploded') }, status: 500 },
    { name: 'returns a string', resolve: () => 'redis://tenant', status: 500, code: 'TRAFFIK_ERR_INVALID_OPTION' },
    { name: 'returns null (the default backend decides)', resolve: () => null, status: 200 }
  ]
  for (const c of cases) {
    const app = Fastify()
    await app.register(traffik, { resolveBackend: c.resolve as never })
    app.get('/', { config: { rateLimit: { rate: '2/min', dynamicBackend: true } } }, async () => 'ok')
    app.get('/health', { config: { rateLimit: false } }, async () => 'ok')
    t.teardown(async () => { await app.close() })
    await app.ready()
    const res = await app.inject('/')
    t.equal(res.statusCode, c.status, `resolveBackend ${c.name}: ${c.status}`)
    if (c.code !== undefined) t.equal(res.json().code, c.code)
    t.equal((await app.inject('/health')).statusCode, 200, `resolveBackend ${c.name}: a route without a dynamic limit never asks it`)
  }
  // With resolveBackendAt: 'onRequest' it runs for every request, routes without limits included.
  const eager = Fastify()
  await eager.register(traffik, { resolveBackendAt: 'onRequest', resolveBackend: () => { throw new Error('tenant lookup exploded') } })
  eager.get('/health', { config: { rateLimit: false } }, async () => 'ok')
  t.teardown(async () => { await eager.close() })
  t.equal((await eager.inject('/health')).statusCode, 500)
})

t.test('no unhandled rejections', async (t) => {
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(unhandled, [])
})
