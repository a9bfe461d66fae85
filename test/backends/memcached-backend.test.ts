/**
 * MemcachedBackend against a real memcached: construction and options, the storage primitives,
 * memcached's key and TTL rules (hashed long/unsafe keys, whole seconds rounded up, the 30-day
 * rule), the counter fast path (rejections take their cost back), all-or-nothing limits, CAS
 * exactness between backends, reset/clearPrefix through generations, locks, two servers, health.
 */
import { createHash } from 'node:crypto'
import memjs from 'memjs'
import t, { type Test } from 'tap'
import { FixedWindow, GCRA, MemcachedBackend, SlidingWindowCounter, TokenBucket, type MemcachedClient } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import { expirationOf, MAX_RELATIVE_EXPIRATION, safeKey } from '../../lib/backends/memcached-keys.js'
import { sharedMemcachedServers, startMemcached, uniqueNamespace } from '../../scripts/support/services.js'
import { roomInWindow } from '../helpers/window-room.js'

// Counts on one-minute fixed windows of the real clock: each test starts with room in its window.
t.beforeEach(async () => { await roomInWindow(60_000, 3000) })

const servers = await sharedMemcachedServers()

async function backendFor (t: Test, options: ConstructorParameters<typeof MemcachedBackend>[1] = {}, list = servers): Promise<MemcachedBackend> {
  const backend = new MemcachedBackend(list, { namespace: uniqueNamespace('mc'), ...options })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  return backend
}

const fixedWindow = new FixedWindow()
const tokenBucket = new TokenBucket()
const op = (key: string, limit: number, extra: Partial<EvaluateOp> = {}): EvaluateOp =>
  ({ strategy: fixedWindow, key, limit, windowMs: 60_000, cost: 1, ...extra })
const allowed = (decisions: Array<{ allowed: boolean }>): boolean[] => decisions.map((d) => d.allowed)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const DAY = 86_400_000

t.test('construction validates servers and options; defaults are persistent, 250 ms, namespace traffik', async (t) => {
  const invalid = { code: 'TRAFFIK_ERR_INVALID_OPTION' }
  t.throws(() => new MemcachedBackend(''), invalid)
  t.throws(() => new MemcachedBackend('host:port:extra'), invalid)
  t.throws(() => new MemcachedBackend('a b:11211'), invalid)
  t.throws(() => new MemcachedBackend(42 as never), invalid)
  t.throws(() => new MemcachedBackend({} as never), invalid, 'an object that is not a memjs client')
  t.throws(() => new MemcachedBackend(servers, { namespace: 'bad\u0001ns' }), invalid)
  t.throws(() => new MemcachedBackend(servers, { timeoutMs: -1 }), invalid)
  t.throws(() => new MemcachedBackend(servers, { generationRefreshMs: -5 }), invalid)
  t.throws(() => new MemcachedBackend(servers, { clientOptions: 'x' as never }), invalid)
  const client = memjs.Client.create(servers)
  t.teardown(() => { client.close() })
  t.throws(() => new MemcachedBackend(client, { clientOptions: { timeout: 1 } }), invalid, 'client options only for clients the backend creates')

  const backend = new MemcachedBackend('127.0.0.1:1, 127.0.0.1:2')
  t.equal(backend.persistent, true)
  t.equal(backend.timeoutMs, 250)
  t.equal(backend.namespace, 'traffik')
  t.equal(backend.generationRefreshMs, 1000)
  t.equal(backend.servers, '127.0.0.1:1,127.0.0.1:2')
  t.equal(backend.client, undefined, 'memjs is loaded and the client created only when first needed')
})

t.test('a memjs client passed in is used as it is and never closed', async (t) => {
  const client = memjs.Client.create(servers, { logger: { log () {} } })
  t.teardown(() => { client.close() })
  const typed: MemcachedClient = client // a memjs Client fits the structural type
  const backend = new MemcachedBackend(typed, { namespace: uniqueNamespace('own') })
  await backend.initialize()
  t.equal(backend.client, client)
  await backend.set('k', 'v')
  await backend.close()
  const { value } = await client.set('still-open', 'yes').then(async () => await client.get('still-open'))
  t.equal(value?.toString(), 'yes', 'the client still works after backend.close()')
})

t.test('primitives: get, set (with TTL), delete, increment, decrement, incrementWithTtl, expire, multiGet, multiSet', async (t) => {
  const backend = await backendFor(t)
  await backend.set('a', 'x')
  t.equal(await backend.get('a'), 'x')
  t.equal(await backend.get('missing'), null)
  t.equal(await backend.delete('a'), true)
  t.equal(await backend.delete('a'), false)

  t.equal(await backend.increment('n'), 1, 'a missing counter starts at 0')
  t.equal(await backend.increment('n', 4), 5)
  t.equal(await backend.decrement('n', 2), 3)
  t.equal(await backend.increment('n', -1), 2, 'a negative increment goes through decr')
  t.equal(await backend.decrement('n', 10), 0, 'memcached counters stop at 0')
  t.equal(await backend.get('n'), '0')
  t.equal(await backend.increment('big', 2 ** 40), 2 ** 40, '64-bit counters are decoded right (memjs decodes them wrongly above 2^32)')

  t.equal(await backend.incrementWithTtl('w', 2, 100), 2)
  t.equal(await backend.incrementWithTtl('w', 3, 100), 5, 'later calls keep adding')
  await backend.set('short', 'v', 300)
  await sleep(350)
  t.equal(await backend.get('short'), 'v', 'a TTL is rounded up, never cut short')
  t.equal(await backend.get('w'), '5')
  await sleep(1900)
  t.equal(await backend.get('w'), null, 'a 100 ms TTL is gone within 2.1 s (ceil to seconds, plus the one-second clock tick)')

  const racers = await Promise.all(Array.from({ length: 200 }, async () => await backend.incrementWithTtl('race', 1, 60_000)))
  t.same(racers.sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => i + 1), 'concurrent first increments never lose one (the NOT_STORED creation race is retried)')

  t.equal(await backend.expire('n', 60_000), true)
  t.equal(await backend.expire('nothing', 60_000), false)
  await backend.multiSet([['p', '1'], ['q', '2']], 60_000)
  t.same(await backend.multiGet(['p', 'q', 'r']), ['1', '2', null])

  await t.rejects(backend.set('bad', 'v', -1), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  await t.rejects(backend.increment('bad', 1.5), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  await backend.set('text', 'abc')
  await t.rejects(backend.increment('text'), { code: 'TRAFFIK_ERR_BACKEND' }, 'memcached errors surface as BackendError')
})

t.test('TTL rules: whole seconds rounded up plus one, absolute Unix time beyond 30 days', async (t) => {
  t.equal(expirationOf(1), 2)
  t.equal(expirationOf(1000), 2)
  t.equal(expirationOf(1001), 3)
  t.equal(expirationOf((MAX_RELATIVE_EXPIRATION - 1) * 1000), MAX_RELATIVE_EXPIRATION, 'just under 30 days stays relative')
  const now = 1_800_000_000_500
  t.equal(expirationOf(MAX_RELATIVE_EXPIRATION * 1000, now), Math.ceil(now / 1000) + MAX_RELATIVE_EXPIRATION + 1, '30 days and more: absolute')
  t.equal(expirationOf(40 * DAY, now), Math.ceil(now / 1000) + 40 * 86_400 + 1)
})

t.test('key rules: printable keys of at most 250 bytes pass, others are hashed under the readable namespace', async (t) => {
  t.equal(safeKey('ns', 'ns:g:u:{1.2.3.4}'), 'ns:g:u:{1.2.3.4}')
  const long = 'ns:g:' + 'x'.repeat(300)
  t.equal(safeKey('ns', long), `ns:sha256:${createHash('sha256').update(long).digest('hex')}`)
  t.equal(safeKey('ns', 'x'.repeat(250)), 'x'.repeat(250), 'exactly 250 bytes is allowed')
  t.match(safeKey('ns', 'ns:g:user 42'), /^ns:sha256:[0-9a-f]{64}$/, 'spaces are hashed')
  t.match(safeKey('ns', 'ns:g:a\r\nb'), /^ns:sha256:[0-9a-f]{64}$/, 'control characters are hashed')
  t.equal(safeKey('ns', 'ns:g:ünï'), 'ns:g:ünï', 'non-ASCII within 250 bytes passes')
  t.match(safeKey('ns', 'ns:g:' + 'é'.repeat(123)), /^ns:sha256:/, '246 characters but 251 bytes: hashed')
  t.not(safeKey('ns', 'ns:g:user 1'), safeKey('ns', 'ns:g:user 2'))
})

t.test('a 400-character identifier and identifiers with spaces or control characters work and stay distinct', async (t) => {
  const backend = await backendFor(t)
  const long = 'i'.repeat(400)
  for (const strategy of [fixedWindow, tokenBucket]) {
    const key = `${strategy.name}:{${long}}`
    const decisions = []
    for (let i = 0; i < 4; i++) decisions.push(...await backend.evaluate([op(key, 3, { strategy })], 'hit'))
    t.same(allowed(decisions), [true, true, true, false], `${strategy.name}: exact with a 400-character key`)
    t.same(allowed(await backend.evaluate([op(`${strategy.name}:{${long}x}`, 3, { strategy })], 'hit')), [true], 'a longer key has its own counter')
  }
  await backend.set(long, 'v')
  t.equal(await backend.get(long), 'v', 'primitives hash long keys too')
  await backend.set('user 1', 'one')
  await backend.set('user\n1', 'two')
  t.same(await backend.multiGet(['user 1', 'user\n1']), ['one', 'two'])
})

t.test('a 40-day window: the TTL is sent as an absolute time and the key lives on', async (t) => {
  const backend = await backendFor(t)
  const windowMs = 40 * DAY
  const key = 'long:{client}'
  const first = await backend.evaluate([op(key, 3, { windowMs })], 'hit')
  const windowId = Math.floor(Date.now() / windowMs)
  t.equal(await backend.get(`${key}:${windowId}`), '1', 'the counter exists after the call (a relative 40-day TTL would have expired it at once)')
  const second = await backend.evaluate([op(key, 3, { windowMs })], 'hit')
  t.same([first[0]!.remaining, second[0]!.remaining], [2, 1], 'the second decision sees the first')

  for (const strategy of [tokenBucket, new GCRA({ burst: 3 })]) {
    const stateKey = `long-${strategy.name}:{client}`
    const a = await backend.evaluate([op(stateKey, 3, { strategy, windowMs })], 'hit')
    t.not(await backend.get(stateKey), null, `${strategy.name}: state stored with a 40-day TTL`)
    const b = await backend.evaluate([op(stateKey, 3, { strategy, windowMs })], 'hit')
    t.same([a[0]!.remaining, b[0]!.remaining], [2, 1], `${strategy.name}: the second decision sees the first`)
  }
})

t.test('counter fast path: a rejection takes its cost back; cost above the limit charges nothing', async (t) => {
  const backend = await backendFor(t)
  const key = 'fw:{c}'
  const results = []
  for (let i = 0; i < 6; i++) results.push(...await backend.evaluate([op(key, 3)], 'hit'))
  t.same(allowed(results), [true, true, true, false, false, false])
  const windowId = Math.floor(Date.now() / 60_000)
  t.equal(await backend.get(`${key}:${windowId}`), '3', 'rejected requests left no count behind')
  const [big] = await backend.evaluate([op('fw:{big}', 3, { cost: 5 })], 'hit')
  t.equal(big!.retryAfterMs, -1)
  t.equal(await backend.get(`fw:{big}:${windowId}`), null, 'nothing was written for an impossible cost')
  const [checked] = await backend.evaluate([op(key, 3, { cost: 0 })], 'check')
  t.equal(checked!.remaining, 0)
  const [refunded] = await backend.evaluate([op(key, 3)], 'refund')
  t.equal(refunded!.remaining, 1)
  t.equal(await backend.get(`${key}:${windowId}`), '2')
})

t.test('several limits are all-or-nothing: counters, stateful, and mixed', async (t) => {
  const backend = await backendFor(t)
  const swc = new SlidingWindowCounter()
  const cases: Array<[string, EvaluateOp['strategy'], EvaluateOp['strategy']]> = [
    ['counters', fixedWindow, swc],
    ['stateful', tokenBucket, new GCRA({ burst: 1 })],
    ['mixed', fixedWindow, tokenBucket]
  ]
  for (const [label, first, second] of cases) {
    const a = op(`${label}-a:{c}`, 5, { strategy: first })
    const b = op(`${label}-b:{c}`, 1, { strategy: second })
    t.same(allowed(await backend.evaluate([a, b], 'hit')), [true, true], `${label}: both allowed`)
    t.same(allowed(await backend.evaluate([a, b], 'hit')), [true, false], `${label}: b is full`)
    t.same(allowed(await backend.evaluate([a, b], 'hit')), [true, false])
    const [alone] = await backend.evaluate([{ ...a, cost: 0 }], 'check')
    t.equal(alone!.remaining, 4, `${label}: a was charged once, not by the rejected pairs`)
    const refunds = await backend.evaluate([a, b], 'refund')
    t.equal(refunds[0]!.remaining, 5, `${label}: refund gives a's unit back`)
  }
})

t.test('stateful strategies are exact under concurrency between two backends (CAS)', async (t) => {
  const namespace = uniqueNamespace('cas')
  const one = await backendFor(t, { namespace, timeoutMs: 5000 })
  const two = await backendFor(t, { namespace, timeoutMs: 5000 })
  for (const strategy of [tokenBucket, new GCRA({ burst: 25 })]) {
    const key = `conc-${strategy.name}:{c}`
    const decisions = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
      (await (i % 2 === 0 ? one : two).evaluate([op(key, 25, { strategy, windowMs: DAY })], 'hit'))[0]!))
    t.equal(decisions.filter((d) => d.allowed).length, 25, `${strategy.name}: exactly the limit admitted out of 200 concurrent requests`)
  }
})

t.test('several stateful limits stay all-or-nothing under concurrency (CAS conflicts undo partial writes)', async (t) => {
  const namespace = uniqueNamespace('pairs')
  const one = await backendFor(t, { namespace, timeoutMs: 5000 })
  const two = await backendFor(t, { namespace, timeoutMs: 5000 })
  const a = op('pair-a:{c}', 10, { strategy: tokenBucket, windowMs: DAY })
  const b = op('pair-b:{c}', 200, { strategy: new GCRA({ burst: 200 }), windowMs: DAY })
  // One backend charges the pair (a is written first, keys go in order) while the other keeps
  // writing b alone, so pair writes lose races on b after a was written and must be undone.
  const [pairs, singles] = await Promise.all([
    Promise.all(Array.from({ length: 60 }, async () => await one.evaluate([a, b], 'hit'))),
    Promise.all(Array.from({ length: 60 }, async (_, i) => { await sleep(i % 10); return await two.evaluate([b], 'hit') }))
  ])
  const admittedPairs = pairs.filter((d) => d.every((x) => x.allowed)).length
  t.equal(admittedPairs, 10, 'exactly 10 pairs admitted (a was never charged by a pair that did not go through)')
  t.equal(singles.filter((d) => d[0]!.allowed).length, 60)
  const [left] = await one.evaluate([{ ...b, cost: 0 }], 'check')
  t.equal(left!.remaining, 200 - 60 - admittedPairs, 'b was charged once per admitted pair and single, never by a rejected or retried pair')
})

t.test('reset() starts a new generation: O(1), seen by other processes, other namespaces untouched', async (t) => {
  const namespace = uniqueNamespace('reset')
  const backend = await backendFor(t, { namespace })
  const peer = await backendFor(t, { namespace, generationRefreshMs: 50 })
  const other = await backendFor(t)
  for (const b of [backend, other]) {
    await b.evaluate([op('r:{c}', 2)], 'hit')
    await b.evaluate([op('r:{c}', 2, { strategy: tokenBucket, key: 't:{c}' })], 'hit')
    await b.set('plain', 'v')
  }
  t.equal((await peer.evaluate([op('r:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 1, 'the peer shares the counter')
  await backend.reset()
  t.equal((await backend.evaluate([op('r:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 2, 'counter cleared at once here')
  t.equal((await backend.evaluate([op('t:{c}', 2, { strategy: tokenBucket, cost: 0 })], 'check'))[0]!.remaining, 2, 'state cleared')
  t.equal(await backend.get('plain'), null, 'primitive keys cleared')
  await sleep(80)
  await peer.evaluate([op('r:{c}', 2, { cost: 0 })], 'check') // the stale generation is still used once while it refreshes
  await sleep(20)
  t.equal((await peer.evaluate([op('r:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 2, 'the peer sees the reset within generationRefreshMs')
  t.equal((await other.evaluate([op('r:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 1, 'another namespace keeps its counters')
  t.equal(await other.get('plain'), 'v')

  const eager = await backendFor(t, { namespace, generationRefreshMs: 0 })
  await eager.evaluate([op('e:{c}', 2)], 'hit')
  await backend.reset()
  t.equal((await eager.evaluate([op('e:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 2, 'generationRefreshMs 0 sees a reset immediately')
})

t.test('clearPrefix() gives the prefix a new generation; keys outside it keep their counters', async (t) => {
  const backend = await backendFor(t)
  await backend.evaluate([op('GET:/a:{c}', 2)], 'hit')
  await backend.evaluate([op('GET:/a:{d}', 2, { strategy: tokenBucket })], 'hit')
  await backend.evaluate([op('GET:/ab:{c}', 2)], 'hit')
  t.equal(await backend.clearPrefix('GET:/a:{'), -1)
  t.equal((await backend.evaluate([op('GET:/a:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 2)
  t.equal((await backend.evaluate([op('GET:/a:{d}', 2, { strategy: tokenBucket, cost: 0 })], 'check'))[0]!.remaining, 2)
  t.equal((await backend.evaluate([op('GET:/ab:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 1, 'a neighbouring prefix is untouched')
  await backend.evaluate([op('GET:/a:{c}', 2)], 'hit')
  await backend.clearPrefix('GET:/a:{')
  t.equal((await backend.evaluate([op('GET:/a:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 2, 'clearing twice works')
  const peer = await backendFor(t, { namespace: backend.namespace, generationRefreshMs: 0 })
  t.equal((await peer.evaluate([op('GET:/ab:{c}', 2, { cost: 0 })], 'check'))[0]!.remaining, 1, 'a new process reads the same generations')
})

t.test('locks: exclusive, TTL-bounded, released only by their holder', async (t) => {
  const backend = await backendFor(t)
  const first = backend.getLock('job', 5000)
  t.equal(await first.acquire(), true)
  t.equal(await backend.getLock('job', 5000).acquire({ blocking: false }), false)
  const started = Date.now()
  t.equal(await backend.getLock('job', 5000).acquire({ timeoutMs: 100 }), false)
  t.ok(Date.now() - started < 1000, 'a blocking acquire gives up at its timeout')
  await first.release()
  const second = backend.getLock('job', 5000)
  t.equal(await second.acquire({ blocking: false }), true)
  await backend.delete('job') // as if the lock had expired
  const third = backend.getLock('job', 5000)
  t.equal(await third.acquire({ blocking: false }), true)
  await second.release() // the old holder must not free the new holder's lock
  t.equal(await backend.getLock('job', 5000).acquire({ blocking: false }), false)
  await third.release()
  t.equal(await backend.getLock('job', 5000).acquire({ blocking: false }), true)
})

t.test('two memcached servers in one backend: keys are spread, limits stay exact', async (t) => {
  const a = await startMemcached()
  const b = await startMemcached()
  t.teardown(async () => { await a.stop(); await b.stop() })
  const list = `${a.host}:${a.port},${b.host}:${b.port}`
  const namespace = uniqueNamespace('two')
  const one = await backendFor(t, { namespace, timeoutMs: 5000 }, list)
  const two = await backendFor(t, { namespace, timeoutMs: 5000 }, list)
  for (const strategy of [fixedWindow, tokenBucket]) {
    const counts = await Promise.all(Array.from({ length: 12 }, async (_, k) => {
      const decisions = await Promise.all(Array.from({ length: 30 }, async (_, i) =>
        (await (i % 2 === 0 ? one : two).evaluate([op(`k${k}:{c}`, 10, { strategy })], 'hit'))[0]!))
      return decisions.filter((d) => d.allowed).length
    }))
    t.same(counts, new Array(12).fill(10), `${strategy.name}: exactly 10 of 30 on every key`)
  }
  const items = await Promise.all([a, b].map(async (server) => await itemCount(`${server.host}:${server.port}`)))
  t.ok(items.every((n) => n > 3), `both servers hold keys (${items.join(' / ')})`)
  const health = await one.healthCheck()
  t.equal(health.healthy, true)
  t.type(health.latencyMs, 'number')
})

t.test('healthCheck reports latency, and failure when a server does not answer', async (t) => {
  const backend = await backendFor(t)
  const health = await backend.healthCheck()
  t.equal(health.healthy, true)
  t.ok(health.latencyMs >= 0 && health.latencyMs < 250)
  // Not initialized: with a server down, initialize() fails whenever that server holds the generation item.
  const down = new MemcachedBackend(`${servers},127.0.0.1:1`, { namespace: uniqueNamespace('mc'), timeoutMs: 300 })
  t.teardown(async () => { await down.close() })
  const report = await down.healthCheck()
  t.equal(report.healthy, false)
  t.match(report.error, { code: 'TRAFFIK_ERR_BACKEND' })
})

t.test('a closed backend refuses calls; close() is idempotent', async (t) => {
  const backend = await backendFor(t)
  await backend.close()
  await backend.close()
  await t.rejects(backend.get('x'), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
  await t.rejects(backend.evaluate([op('x', 1)], 'hit'), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
})

async function itemCount (server: string): Promise<number> {
  const client = memjs.Client.create(server, { logger: { log () {} } })
  try {
    return await new Promise<number>((resolve, reject) => {
      client.stats((error, _server, stats) => {
        if (error !== null || stats === null) reject(error ?? new Error('no stats'))
        else resolve(Number(stats.curr_items))
      })
    })
  } finally {
    client.close()
  }
}
