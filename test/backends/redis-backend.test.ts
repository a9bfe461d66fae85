/**
 * RedisBackend against a real redis-server: construction (URL, client, factory, @fastify/redis),
 * the storage primitives with the namespace prefix, locks (and Redlock), evaluate modes and
 * all-or-nothing limits, reset/clearPrefix that leave foreign keys alone, NOSCRIPT recovery,
 * health checks.
 */
import fastifyRedis from '@fastify/redis'
import Fastify from 'fastify'
import type { Socket } from 'node:net'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { FixedWindow, RedisBackend, TokenBucket, traffik } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import { sharedRedisUrl, startRedis, uniqueNamespace, type RunningServer } from '../../scripts/support/services.js'
import { roomInWindow } from '../helpers/window-room.js'

// Counts on one-minute fixed windows of the real clock: each test starts with room in its window.
t.beforeEach(async () => { await roomInWindow(60_000, 3000) })

const url = await sharedRedisUrl()
const raw = new Redis(url)
t.teardown(async () => { await raw.quit() })

async function backendFor (t: Test, options: ConstructorParameters<typeof RedisBackend>[1] = {}): Promise<RedisBackend> {
  const backend = new RedisBackend(url, { namespace: uniqueNamespace('rb'), ...options })
  await backend.initialize()
  t.teardown(async () => {
    if (!backend.closed) {
      await backend.reset()
      await backend.close()
    }
  })
  return backend
}

const fixedWindow = new FixedWindow()
const op = (key: string, limit: number, extra: Partial<EvaluateOp> = {}): EvaluateOp =>
  ({ strategy: fixedWindow, key, limit, windowMs: 60_000, cost: 1, ...extra })

t.test('construction validates the connection and the options', async (t) => {
  const invalid = { code: 'TRAFFIK_ERR_INVALID_OPTION' }
  t.throws(() => new RedisBackend('localhost:6379'), invalid, 'a URL needs the redis:// scheme')
  t.throws(() => new RedisBackend(42 as never), invalid)
  t.throws(() => new RedisBackend({} as never), invalid, 'an object that is not an ioredis client')
  t.throws(() => new RedisBackend(url, { timeoutMs: -1 }), invalid)
  t.throws(() => new RedisBackend(url, { connectTimeoutMs: 0 }), invalid)
  t.throws(() => new RedisBackend(url, { scanCount: 0 }), invalid)
  t.throws(() => new RedisBackend(url, { redlock: [] }), invalid)
  t.throws(() => new RedisBackend(url, { redlock: ['nope'] }), invalid)
  t.throws(() => new RedisBackend(url, { closeClient: 'yes' as never }), invalid)
  const backend = new RedisBackend(url)
  t.equal(backend.namespace, 'traffik')
  t.equal(backend.persistent, true, 'persistent by default: a deploy never wipes shared counters')
  t.equal(backend.timeoutMs, 250)
  t.equal(backend.initialized, false, 'constructing does not connect')
  t.equal(backend.client, undefined)
})

t.test('a URL: the backend creates the client, and closes it', async (t) => {
  const backend = new RedisBackend(url, { namespace: uniqueNamespace() })
  await backend.initialize()
  const client = backend.client as Redis
  t.equal(backend.driver, 'ioredis')
  t.equal(client.status, 'ready')
  t.equal(await backend.ready(), true)
  await backend.close()
  t.equal(client.status, 'end', 'the client it created is closed')
  t.equal(await backend.ready(), false)
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
})

t.test('a client passed in is used as it is and never closed', async (t) => {
  const client = new Redis(url)
  t.teardown(async () => { await client.quit() })
  const namespace = uniqueNamespace()
  const backend = new RedisBackend(client, { namespace })
  await backend.initialize()
  t.equal(backend.client, client)
  await backend.set('k', 'v')
  t.equal(await client.get(`${namespace}:k`), 'v')
  await backend.reset()
  await backend.close()
  t.equal(client.status, 'ready', 'the user still owns it')
})

t.test('a lazy client passed in is connected on initialize', async (t) => {
  const client = new Redis(url, { lazyConnect: true })
  t.teardown(async () => { await client.quit() })
  const backend = new RedisBackend(client, { namespace: uniqueNamespace() })
  await backend.initialize()
  t.equal(client.status, 'ready')
  await backend.close()
})

t.test('an async factory is called once; its client is closed unless closeClient is false', async (t) => {
  let calls = 0
  const made: Redis[] = []
  const factory = async (): Promise<Redis> => {
    calls++
    const client = new Redis(url, { lazyConnect: true })
    made.push(client)
    return client
  }
  const backend = new RedisBackend(factory, { namespace: uniqueNamespace() })
  await Promise.all([backend.initialize(), backend.initialize(), backend.get('x')])
  t.equal(calls, 1, 'concurrent initializations share one connection')
  await backend.close()
  t.equal(made[0]!.status, 'end')

  const kept = new RedisBackend(factory, { namespace: uniqueNamespace(), closeClient: false })
  await kept.initialize()
  await kept.close()
  t.equal(made[1]!.status, 'ready', 'closeClient: false leaves it open')
  await made[1]!.quit()
})

t.test('an unreachable URL fails initialize within connectTimeoutMs, and a decision answers through the error', async (t) => {
  const backend = new RedisBackend('redis://127.0.0.1:1', { connectTimeoutMs: 300, namespace: uniqueNamespace() })
  const started = Date.now()
  await t.rejects(backend.initialize(), { code: 'TRAFFIK_ERR_BACKEND' })
  t.ok(Date.now() - started < 2000, 'bounded')
  await t.rejects(backend.evaluate([op('k:{a}', 1)], 'hit'), { code: /TRAFFIK_ERR_BACKEND/ })
  await backend.close()
})

t.test('@fastify/redis: RedisBackend(instance.redis) inside the plugin options function', async (t) => {
  const namespace = uniqueNamespace()
  const app = Fastify()
  await app.register(fastifyRedis, { url })
  await app.register(traffik, (instance) => ({ backend: new RedisBackend(instance.redis, { namespace }) }))
  app.get('/', { config: { rateLimit: { rate: '2/min', identifier: () => 'client-1' } } }, async () => ({ ok: true }))
  await app.ready()
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await app.inject('/')).statusCode)
  t.same(statuses, [200, 200, 429])
  const keys = await raw.keys(`${namespace}:*`)
  t.same(keys, [`${namespace}:GET:/:{client-1}`], 'keys carry the namespace, the route pattern and the hash-tagged identifier')
  await app.throttle.reset()
  t.equal(await raw.exists(keys[0]!), 0, 'fastify.throttle.reset() clears it')
  const client = app.redis
  const ended = new Promise((resolve) => client.once('end', resolve))
  await app.close()
  await ended
  t.equal(client.status, 'end', '@fastify/redis closed its client itself; the backend left it alone')
})

t.test('autoPipelining: concurrent decisions share writes on the client made from a URL, and stay exact', async (t) => {
  t.throws(() => new RedisBackend(url, { autoPipelining: 'yes' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /autoPipelining/ })
  const plain = await backendFor(t)
  t.equal(plain.autoPipelining, false, 'off by default')
  t.equal((plain.client as Redis).options.enableAutoPipelining, false)
  const overridden = await backendFor(t, { autoPipelining: true, clientOptions: { enableAutoPipelining: false } })
  t.equal((overridden.client as Redis).options.enableAutoPipelining, false, 'clientOptions wins')
  const backend = await backendFor(t, { autoPipelining: true })
  const client = backend.client as Redis
  t.equal(client.options.enableAutoPipelining, true)
  await backend.evaluate([op('warm', 1000)], 'hit')
  const before = client.autoPipelineQueueSize
  const decisions = Array.from({ length: 40 }, async () => await backend.evaluate([op('k', 25)], 'hit'))
  t.ok(client.autoPipelineQueueSize > before, 'the decisions issued in one tick wait in one pipeline')
  const allowed = (await Promise.all(decisions)).filter(([d]) => d!.allowed).length
  t.equal(allowed, 25, 'exactly the limit is admitted')
  const [checked] = await backend.evaluate([op('k', 25)], 'check')
  t.equal(checked!.remaining, 0)
  const passed = new Redis(url)
  t.teardown(() => { passed.disconnect() })
  const theirs = new RedisBackend(passed, { namespace: uniqueNamespace('rb'), autoPipelining: true })
  await theirs.initialize()
  t.equal(passed.options.enableAutoPipelining, false, 'a client passed in keeps its own setting')
  await theirs.close()
})

/** Counts the writes the socket of an ioredis client makes (each is one system call). */
function countWrites (client: Redis): { readonly count: number } {
  const socket = (client as unknown as { stream: Socket }).stream
  const counter = { count: 0 }
  const write = socket._write.bind(socket)
  const writev = socket._writev?.bind(socket)
  socket._write = (...args: Parameters<Socket['_write']>) => { counter.count++; write(...args) }
  if (writev !== undefined) socket._writev = (...args: Parameters<NonNullable<Socket['_writev']>>) => { counter.count++; writev(...args) }
  return counter
}

t.test('coalesceWrites: the scripts of one turn of the event loop leave in one write, on by default, exact', async (t) => {
  t.throws(() => new RedisBackend(url, { coalesceWrites: 'yes' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /coalesceWrites/ })
  const decideMany = async (backend: RedisBackend, key: string, count: number, limit: number): Promise<number> => {
    const decisions = Array.from({ length: count }, async () => await backend.evaluate([op(key, limit)], 'hit'))
    return (await Promise.all(decisions)).filter(([d]) => d!.allowed).length
  }
  const backend = await backendFor(t)
  t.equal(backend.coalesceWrites, true, 'on by default')
  await backend.evaluate([op('warm', 1000)], 'hit') // loads the script: from here on EVALSHA
  const writes = countWrites(backend.client as Redis)
  t.equal(await decideMany(backend, 'k', 40, 25), 25, 'exactly the limit is admitted')
  t.equal(writes.count, 1, '40 scripts sent in one turn left in one write')
  const [checked] = await backend.evaluate([op('k', 25)], 'check')
  t.equal(checked!.remaining, 0)
  t.equal(writes.count, 2, 'a lone decision in a later turn leaves at once, in a write of its own')

  const off = await backendFor(t, { coalesceWrites: false })
  await off.evaluate([op('warm', 1000)], 'hit')
  const separate = countWrites(off.client as Redis)
  t.equal(await decideMany(off, 'k', 40, 25), 25)
  t.equal(separate.count, 40, 'off: one write per script')

  const passed = new Redis(url)
  t.teardown(() => { passed.disconnect() })
  const theirs = new RedisBackend(passed, { namespace: uniqueNamespace('rb') })
  await theirs.initialize()
  t.teardown(async () => { await theirs.reset(); await theirs.close() })
  await theirs.evaluate([op('warm', 1000)], 'hit')
  const theirWrites = countWrites(passed)
  t.equal(await decideMany(theirs, 'k', 10, 4), 4)
  t.equal(theirWrites.count, 1, 'a client passed in is coalesced too')
})

t.test('primitives add the namespace and keep millisecond TTLs', async (t) => {
  const backend = await backendFor(t)
  const ns = backend.namespace
  t.equal(await backend.get('missing'), null)
  await backend.set('plain', 'v1')
  t.equal(await raw.get(`${ns}:plain`), 'v1')
  t.equal(await raw.pttl(`${ns}:plain`), -1, 'no TTL unless given')
  await backend.set('short', 'v2', 1500)
  const pttl = await raw.pttl(`${ns}:short`)
  t.ok(pttl > 1000 && pttl <= 1500, `PX in ms (${pttl})`)
  await backend.set('tiny', 'v', 0.2)
  t.ok(await raw.pttl(`${ns}:tiny`) <= 1, 'sub-millisecond TTLs round up to 1 ms, never to "no expiry"')
  t.equal(await backend.delete('plain'), true)
  t.equal(await backend.delete('plain'), false)
  t.equal(await backend.increment('n'), 1)
  t.equal(await backend.increment('n', 5), 6)
  t.equal(await backend.decrement('n', 2), 4)
  t.equal(await raw.get(`${ns}:n`), '4')
  t.equal(await backend.expire('n', 2000), true)
  const ttl = await raw.pttl(`${ns}:n`)
  t.ok(ttl > 1500 && ttl <= 2000, 'PEXPIRE')
  t.equal(await backend.expire('none', 2000), false)

  t.equal(await backend.incrementWithTtl('c', 3, 5000), 3)
  t.equal(await backend.incrementWithTtl('c', 3, 100_000), 6, 'an existing key keeps counting')
  const cttl = await raw.pttl(`${ns}:c`)
  t.ok(cttl > 4000 && cttl <= 5000, 'and keeps the TTL it got when it was new')
  await backend.increment('immortal')
  t.equal(await backend.incrementWithTtl('immortal', 1, 3000), 2)
  t.ok(await raw.pttl(`${ns}:immortal`) > 0, 'a counter without a TTL gets one: nothing stays forever')

  await backend.multiSet([['m1', 'a'], ['m2', 'b']], 3000)
  t.same(await backend.multiGet(['m1', 'none', 'm2']), ['a', null, 'b'])
  t.ok(await raw.pttl(`${ns}:m2`) > 2000)
  await backend.multiSet([['m3', 'c']])
  t.equal(await raw.pttl(`${ns}:m3`), -1)
  t.same(await backend.multiGet([]), [])
})

t.test('incrementWithTtl is atomic under concurrency', async (t) => {
  const backend = await backendFor(t)
  const values = await Promise.all(Array.from({ length: 200 }, async () => await backend.incrementWithTtl('hot', 1, 10_000)))
  t.same(values.sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1))
  t.ok(await raw.pttl(`${backend.namespace}:hot`) > 0)
})

t.test('evaluate: hit consumes, check does not, refund gives back', async (t) => {
  const backend = await backendFor(t)
  const key = 'route:{alice}'
  const [first] = await backend.evaluate([op(key, 3)], 'hit')
  t.match(first, { allowed: true, limit: 3, remaining: 2, retryAfterMs: 0 })
  t.ok(first!.resetMs > 0 && first!.resetMs <= 60_000)
  const [checked] = await backend.evaluate([op(key, 3)], 'check')
  t.equal(checked!.remaining, 1, 'check answers what a hit would leave')
  const [again] = await backend.evaluate([op(key, 3)], 'check')
  t.equal(again!.remaining, 1, '... and stores nothing')
  await backend.evaluate([op(key, 3)], 'hit')
  await backend.evaluate([op(key, 3)], 'hit')
  const [rejected] = await backend.evaluate([op(key, 3)], 'hit')
  t.match(rejected, { allowed: false, remaining: 0 })
  t.ok(rejected!.retryAfterMs > 0)
  const [refunded] = await backend.evaluate([op(key, 3, { cost: 2 })], 'refund')
  t.match(refunded, { allowed: true, remaining: 2 })
  const [afterRefund] = await backend.evaluate([op(key, 3)], 'hit')
  t.match(afterRefund, { allowed: true, remaining: 1 })
  const [tooBig] = await backend.evaluate([op('route:{bob}', 3, { cost: 4 })], 'hit')
  t.match(tooBig, { allowed: false, retryAfterMs: -1 }, 'a cost above the limit can never pass')
  t.same(await backend.evaluate([], 'hit'), [])
})

t.test('evaluate: several limits are all-or-nothing in one script', async (t) => {
  const backend = await backendFor(t)
  const bucket = new TokenBucket()
  const perMinute = op('minute:{carol}', 3)
  const perSecond: EvaluateOp = { strategy: bucket, key: 'burst:{carol}', limit: 1, windowMs: 60_000, cost: 1 }
  const [a, b] = await backend.evaluate([perMinute, perSecond], 'hit')
  t.ok(a!.allowed && b!.allowed)
  const [c, d] = await backend.evaluate([perMinute, perSecond], 'hit')
  t.equal(c!.allowed, true, 'the minute limit alone would allow')
  t.equal(d!.allowed, false, 'the bucket rejects')
  const [minute, bucketState] = await backend.evaluate([{ ...perMinute, cost: 0 }, { ...perSecond, cost: 0 }], 'check')
  t.equal(minute!.remaining, 2, 'the rejected request did not charge the limit that allowed it')
  t.equal(bucketState!.remaining, 0)
})

t.test('evaluate: a refund for strategies without refund leaves them untouched', async (t) => {
  const backend = await backendFor(t)
  const noRefund = { ...fixedWindow, name: 'no-refund', lua: fixedWindow.lua, step: fixedWindow.step.bind(fixedWindow), encode: fixedWindow.encode, decode: fixedWindow.decode.bind(fixedWindow) }
  await backend.evaluate([op('nr:{a}', 2, { strategy: noRefund })], 'hit')
  const [answer] = await backend.evaluate([op('nr:{a}', 2, { strategy: noRefund })], 'refund')
  t.same(answer, { allowed: true, limit: 2, remaining: 2, resetMs: 0, retryAfterMs: 0 })
  const [state] = await backend.evaluate([op('nr:{a}', 2, { strategy: noRefund, cost: 0 })], 'check')
  t.equal(state!.remaining, 1, 'the charge is still there')
})

t.test('reset() and clearPrefix() delete only this namespace, in batches', async (t) => {
  const backend = await backendFor(t, { scanCount: 7 })
  const ns = backend.namespace
  const foreign = [`${ns}x:key`, `other:${ns}:key`, 'unprefixed', `${ns}`, `x${ns}:key`]
  for (const key of foreign) await raw.set(key, 'foreign')
  t.teardown(async () => { await raw.del(...foreign) })
  for (let i = 0; i < 50; i++) await backend.set(`a:{${i}}`, '1')
  for (let i = 0; i < 20; i++) await backend.set(`b:{${i}}`, '1')
  await backend.set('a*:{literal}', '1')
  await backend.set('a?:{literal}', '1')

  t.equal(await backend.clearPrefix('a*'), 1, 'glob characters in the prefix match literally')
  t.equal(await backend.clearPrefix('a?'), 1)
  t.equal(await backend.clearPrefix('a:'), 50)
  t.equal(await raw.exists(`${ns}:b:{3}`), 1, 'other prefixes stay')
  t.equal(await backend.clearPrefix('nothing:'), 0)
  await backend.reset()
  t.same(await raw.keys(`${ns}:*`), [], 'the namespace is empty')
  for (const key of foreign) t.equal(await raw.get(key), 'foreign', `foreign key ${key} untouched`)
})

t.test('a namespace with glob characters is matched literally by reset()', async (t) => {
  const backend = await backendFor(t, { namespace: `${uniqueNamespace()}[ab]*` })
  const neighbour = backend.namespace.replace('[ab]*', 'a') + ':k'
  await raw.set(neighbour, 'foreign')
  t.teardown(async () => { await raw.del(neighbour) })
  await backend.set('k', 'mine')
  await backend.reset()
  t.equal(await raw.exists(`${backend.namespace}:k`), 0)
  t.equal(await raw.get(neighbour), 'foreign')
})

t.test('NOSCRIPT: after SCRIPT FLUSH the next decision reloads the script and counts on', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const backend = new RedisBackend(`redis://${server.host}:${server.port}`, { namespace: uniqueNamespace() })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  await backend.evaluate([op('k:{a}', 5)], 'hit')
  await backend.evaluate([op('k:{a}', 5)], 'hit')
  await (backend.client as Redis).script('FLUSH')
  t.same(await (backend.client as Redis).script('EXISTS', (await evalshaOf(backend))) as number[], [0], 'the script is gone')
  const [third] = await backend.evaluate([op('k:{a}', 5)], 'hit')
  t.match(third, { allowed: true, remaining: 2 }, 'decided after the flush, state kept')
  await backend.incrementWithTtl('n', 1, 1000)
  await (backend.client as Redis).script('FLUSH')
  t.equal(await backend.incrementWithTtl('n', 1, 1000), 2, 'the primitive scripts recover too')
})

/** The SHA of the FixedWindow evaluation script, as the server saw it last (from SCRIPT LOAD). */
async function evalshaOf (backend: RedisBackend): Promise<string> {
  const { EvaluationScripts } = await import('../../lib/backends/redis-scripts.js')
  const scripts = new EvaluationScripts()
  return scripts.scriptFor([scripts.twinId(fixedWindow)]).script.sha
}

t.test('locks: SET NX PX with a token, compare-and-delete release, always a TTL', async (t) => {
  const backend = await backendFor(t)
  const first = backend.getLock('job:{1}', 2000)
  const second = backend.getLock('job:{1}', 2000)
  t.equal(await first.acquire({ blocking: false }), true)
  const pttl = await raw.pttl(`${backend.namespace}:job:{1}`)
  t.ok(pttl > 1000 && pttl <= 2000, 'the lock has a TTL')
  t.equal(await second.acquire({ blocking: false }), false, 'non-blocking answers at once')
  const started = Date.now()
  t.equal(await second.acquire({ blocking: true, timeoutMs: 150 }), false, 'blocking gives up at its timeout')
  const waited = Date.now() - started
  t.ok(waited >= 140 && waited < 1500, `waited ${waited} ms (never much past the timeout)`)
  const releaseSoon = setTimeout(() => { first.release().catch(() => {}) }, 100)
  t.equal(await second.acquire({ timeoutMs: 2000 }), true, 'blocking acquires once the holder releases')
  clearTimeout(releaseSoon)
  await second.release()
  t.throws(() => backend.getLock('x', 0), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'no lock without a TTL')
})

t.test('locks: a holder whose lock expired never deletes the next holder\'s lock', async (t) => {
  const backend = await backendFor(t)
  const slow = backend.getLock('expiring', 50)
  t.equal(await slow.acquire({ blocking: false }), true)
  await new Promise((resolve) => setTimeout(resolve, 80))
  const next = backend.getLock('expiring', 5000)
  t.equal(await next.acquire({ blocking: false }), true, 'the expired lock is free')
  await slow.release()
  t.equal(await raw.exists(`${backend.namespace}:expiring`), 1, 'the late release left the new holder\'s lock in place')
  await slow.release()
  await next.release()
  t.equal(await raw.exists(`${backend.namespace}:expiring`), 0)
})

t.test('locks: contention admits exactly one holder at a time', async (t) => {
  const backend = await backendFor(t)
  let inside = 0
  let maxInside = 0
  let done = 0
  await Promise.all(Array.from({ length: 10 }, async () => {
    const lock = backend.getLock('critical', 5000)
    if (!await lock.acquire({ timeoutMs: 5000 })) return
    inside++
    maxInside = Math.max(maxInside, inside)
    await new Promise((resolve) => setTimeout(resolve, 5))
    inside--
    done++
    await lock.release()
  }))
  t.equal(maxInside, 1)
  t.equal(done, 10)
})

t.test('Redlock: held with a majority of instances, refused without one', async (t) => {
  const servers: RunningServer[] = await Promise.all([startRedis(), startRedis(), startRedis()])
  t.teardown(async () => { await Promise.all(servers.map(async (s) => { await s.stop() })) })
  const urls = servers.map((s) => `redis://${s.host}:${s.port}`)
  const backend = await backendFor(t, { redlock: urls, timeoutMs: 200 })
  const lock = backend.getLock('rl', 3000)
  t.equal(await lock.acquire({ blocking: false }), true)
  const clients = servers.map((s) => new Redis(s.port, s.host))
  t.teardown(async () => { await Promise.all(clients.map(async (c) => { await c.quit() })) })
  for (const client of clients) t.ok(await client.pttl(`${backend.namespace}:rl`) > 0, 'taken on every instance, with a TTL')
  t.equal(await raw.exists(`${backend.namespace}:rl`), 0, 'not on the counters\' Redis')
  t.equal(await backend.getLock('rl', 3000).acquire({ blocking: false }), false, 'a second holder gets no majority')
  await lock.release()
  for (const client of clients) t.equal(await client.exists(`${backend.namespace}:rl`), 0, 'released everywhere')

  // Someone else holds it on two of three instances: no majority, and nothing is left behind.
  await clients[0]!.set(`${backend.namespace}:rl2`, 'other', 'PX', 5000)
  await clients[1]!.set(`${backend.namespace}:rl2`, 'other', 'PX', 5000)
  t.equal(await backend.getLock('rl2', 3000).acquire({ blocking: false }), false)
  t.equal(await clients[2]!.exists(`${backend.namespace}:rl2`), 0, 'the minority it got was released')

  // One instance down: two of three is still a majority.
  await servers[2]!.stop()
  const survivor = backend.getLock('rl3', 3000)
  t.equal(await survivor.acquire({ blocking: false }), true, 'a majority survives one lost instance')
  await survivor.release()
})

t.test('healthCheck reports the PING latency and never throws', async (t) => {
  const backend = await backendFor(t)
  const health = await backend.healthCheck()
  t.equal(health.healthy, true)
  t.ok(health.latencyMs >= 0 && health.latencyMs < 250)
  const unreachable = new RedisBackend('redis://127.0.0.1:1', { connectTimeoutMs: 200 })
  const bad = await unreachable.healthCheck()
  t.equal(bad.healthy, false)
  t.match(bad.error, { code: /TRAFFIK_ERR_BACKEND/ })
  await unreachable.close()
  await backend.close()
  t.equal((await backend.healthCheck()).healthy, false, 'a closed backend is not healthy')
})

t.test('lib/ never loads a client library at module load, and only its adapter speaks it', async (t) => {
  const { readdir, readFile } = await import('node:fs/promises')
  const root = new URL('../../lib/', import.meta.url)
  const files = (await readdir(root, { recursive: true })).filter((file) => file.endsWith('.ts'))
  const adapters: Record<string, RegExp> = {
    'backends/redis-ioredis.ts': /^(ioredis|iovalkey)$/,
    'backends/redis-node-redis.ts': /^(redis|@redis\/.*)$/,
    'backends/redis-glide.ts': /^@valkey\/valkey-glide$/
  }
  const offenders: string[] = []
  for (const file of files) {
    const source = await readFile(new URL(file, root), 'utf8')
    for (const line of source.split('\n')) {
      const named = /(?:from\s+|import\(\s*|require\(\s*)['"]((?:ioredis|iovalkey|redis|@redis\/[\w-]+|@valkey\/valkey-glide))['"]/.exec(line)
      if (named === null) continue
      if (adapters[file]?.test(named[1]!) !== true) offenders.push(`${file} speaks ${named[1]}: ${line.trim()}`)
      else if (/^\s*import\s+(?!type\b)/.test(line)) offenders.push(`${file} loads ${named[1]} at module load: ${line.trim()}`)
    }
  }
  t.same(offenders, [])
  const ioredis = await readFile(new URL('backends/redis-ioredis.ts', root), 'utf8')
  t.match(ioredis, /await import\('ioredis'\)/, 'the URL path imports it on demand')
})

t.test('a custom strategy without a Lua twin is decided under locks, still exactly', async (t) => {
  const backend = await backendFor(t, { timeoutMs: 3000 })
  const noTwin = {
    name: 'no-twin',
    lua: '',
    step: fixedWindow.step.bind(fixedWindow),
    refund: fixedWindow.refund.bind(fixedWindow),
    encode: fixedWindow.encode.bind(fixedWindow),
    decode: fixedWindow.decode.bind(fixedWindow)
  }
  const decisions = await Promise.all(Array.from({ length: 25 }, async () => await backend.evaluate([op('custom:{dave}', 10, { strategy: noTwin })], 'hit')))
  t.equal(decisions.filter(([d]) => d!.allowed).length, 10, 'exactly the limit under concurrency')
  t.equal(await raw.exists(`${backend.namespace}:custom:{dave}:lock`), 0, 'locks released')
  t.match(await raw.get(`${backend.namespace}:custom:{dave}`), /,10$/, 'the state is stored where the twin would store it')
})

t.test('Redlock: a minority of instances down at startup does not stop the backend; a majority does', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const second = `redis://${server.host}:${server.port}`
  const backend = await backendFor(t, { redlock: [url, second, 'redis://127.0.0.1:1'], connectTimeoutMs: 300 })
  const lock = backend.getLock('rl-startup', 2000)
  t.equal(await lock.acquire({ blocking: false }), true, 'two of three instances grant it')
  await lock.release()
  const broken = new RedisBackend(url, { namespace: uniqueNamespace(), redlock: [url, 'redis://127.0.0.1:1', 'redis://127.0.0.1:2'], connectTimeoutMs: 300 })
  await t.rejects(broken.initialize(), { code: 'TRAFFIK_ERR_BACKEND' })
  await broken.close()
})
