/**
 * RedisBackend on a real 3-master Redis Cluster: decisions for every exported strategy, several
 * limits in one slot (one script) and across slots (per-slot scripts, still all-or-nothing),
 * slot-aware primitives, locks, and reset/clearPrefix that sweep every master and nothing else.
 */
import Fastify from 'fastify'
import { Cluster } from 'ioredis'
import t, { type Test } from 'tap'
import * as traffikModule from '../../lib/index.js'
import { FixedWindow, InMemoryBackend, ManualClock, RedisBackend, TokenBucket, traffik, type RedisDriverName } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import { keySlot } from '../../lib/backends/redis-slot.js'
import type { Strategy } from '../../types/strategy.js'
import { startRedisCluster, uniqueNamespace } from '../../scripts/support/services.js'
import { clusterDrivers } from '../helpers/redis-drivers.js'
import { roomInWindow } from '../helpers/window-room.js'

// Counts on one-minute fixed windows of the real clock: each test starts with room in its window.
t.beforeEach(async () => { await roomInWindow(60_000, 3000) })

const cluster = await startRedisCluster()
const admin = new Cluster(cluster.startupNodes)
t.teardown(async () => {
  await admin.quit()
  await cluster.stop()
})

const strategies = Object.entries(traffikModule).filter(([, value]) => {
  if (typeof value !== 'function' || typeof (value as { prototype?: { step?: unknown } }).prototype?.step !== 'function') return false
  return typeof (new (value as new () => Strategy)()).lua === 'string'
}) as Array<[string, new () => Strategy]>

/** A cluster client of each library that speaks Redis Cluster, made by the backend's factory. */
const makeCluster: Record<string, () => Promise<object>> = {
  ioredis: async () => new Cluster(cluster.startupNodes),
  iovalkey: async () => new (await import('iovalkey')).Cluster(cluster.startupNodes),
  'node-redis': async () => (await import('redis')).createCluster({ rootNodes: cluster.startupNodes.map(({ host, port }) => ({ url: `redis://${host}:${port}` })) }),
  // A generous request timeout: the first commands wait for GLIDE to learn the slot map on a loaded machine.
  'valkey-glide': async () => await (await import('@valkey/valkey-glide')).GlideClusterClient.createClient({ addresses: cluster.startupNodes, requestTimeout: 5000 })
}

async function clusterBackend (t: Test, driver: RedisDriverName, options: ConstructorParameters<typeof RedisBackend>[1] = {}): Promise<RedisBackend> {
  const backend = new RedisBackend(makeCluster[driver]!, { namespace: uniqueNamespace('cl'), ...options })
  await backend.initialize()
  t.teardown(async () => {
    if (backend.closed) return
    await backend.reset()
    await backend.close()
  })
  return backend
}

/** Keys of this namespace on each master, counted on the masters themselves. */
async function keysPerMaster (pattern: string): Promise<number[]> {
  return await Promise.all(admin.nodes('master').map(async (node) => {
    let cursor = '0'
    let count = 0
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      count += keys.length
    } while (cursor !== '0')
    return count
  }))
}

/** Two identifiers whose keys fall in different slots. */
function identifiersInDifferentSlots (namespace: string, prefix: string): [string, string] {
  const first = 'alice'
  for (let i = 0; ; i++) {
    const other = `bob${i}`
    if (keySlot(`${namespace}:${prefix}:{${first}}`) !== keySlot(`${namespace}:${prefix}:{${other}}`)) return [first, other]
  }
}

for (const driver of clusterDrivers) {
  t.test(`${driver}: a factory returning a cluster client: the backend owns and closes it`, async (t) => {
    const backend = await clusterBackend(t, driver)
    t.equal(backend.driver, driver === 'iovalkey' ? 'ioredis' : driver, 'recognised by its shape (iovalkey has the shape of ioredis, and the same adapter)')
    const client = backend.client as { status?: string, isOpen?: boolean, isClosed?: boolean }
    t.equal(await backend.ready(), true)
    const health = await backend.healthCheck()
    t.equal(health.healthy, true, 'PING answered by every master')
    await backend.close()
    t.equal(await backend.ready(), false)
    t.equal(client.isOpen ?? (client.isClosed === undefined ? client.status !== 'end' : !client.isClosed), false, 'the client it made is closed')
  })

  for (const [name, Strategy] of strategies) {
    t.test(`${driver}: ${name} decides on the cluster as one process does`, async (t) => {
      const backend = await clusterBackend(t, driver)
      const strategy = new Strategy()
      const memory = new InMemoryBackend({ clock: new ManualClock() })
      for (const identifier of ['a', 'b', 'c']) {
        const op: EvaluateOp = { strategy, key: `s:{${identifier}}`, limit: 3, windowMs: 3_600_000, cost: 1 }
        const seen: boolean[] = []
        const expected: boolean[] = []
        for (let i = 0; i < 6; i++) {
          seen.push((await backend.evaluate([op], 'hit'))[0]!.allowed)
          expected.push(memory.evaluate([op], 'hit')[0]!.allowed)
        }
        t.same(seen, expected, `identifier ${identifier} (slot ${keySlot(`${backend.namespace}:${op.key}`)})`)
      }
    })
  }

  t.test(`${driver}: several limits of one client share a slot: one script, all-or-nothing`, async (t) => {
    const backend = await clusterBackend(t, driver)
    const ops: EvaluateOp[] = [
      { strategy: new FixedWindow(), key: 'minute:{carol}', limit: 5, windowMs: 60_000, cost: 1 },
      { strategy: new TokenBucket(), key: 'burst:{carol}', limit: 1, windowMs: 60_000, cost: 1 }
    ]
    t.equal(keySlot(`${backend.namespace}:${ops[0]!.key}`), keySlot(`${backend.namespace}:${ops[1]!.key}`), 'the hash tag puts them in one slot')
    t.same((await backend.evaluate(ops, 'hit')).map((d) => d.allowed), [true, true])
    t.same((await backend.evaluate(ops, 'hit')).map((d) => d.allowed), [true, false])
    const [minute] = await backend.evaluate([{ ...ops[0]!, cost: 0 }], 'check')
    t.equal(minute!.remaining, 4, 'the rejected request charged nothing')
  })

  t.test(`${driver}: limits in different slots: one script per slot, still all-or-nothing`, async (t) => {
    const backend = await clusterBackend(t, driver)
    const [x, y] = identifiersInDifferentSlots(backend.namespace, 'k')
    const generous: EvaluateOp = { strategy: new FixedWindow(), key: `k:{${x}}`, limit: 10, windowMs: 60_000, cost: 1 }
    const strict: EvaluateOp = { strategy: new FixedWindow(), key: `k:{${y}}`, limit: 1, windowMs: 60_000, cost: 1 }
    t.same((await backend.evaluate([generous, strict], 'hit')).map((d) => d.allowed), [true, true])
    const second = await backend.evaluate([generous, strict], 'hit')
    t.same(second.map((d) => d.allowed), [true, false], 'the strict limit rejects')
    const [after] = await backend.evaluate([{ ...generous, cost: 0 }], 'check')
    t.equal(after!.remaining, 9, 'the generous limit, charged first, was refunded')
    // Rejection first: the later slot is only checked, never charged.
    const third = await backend.evaluate([strict, generous], 'hit')
    t.same(third.map((d) => d.allowed), [false, true])
    const [still] = await backend.evaluate([{ ...generous, cost: 0 }], 'check')
    t.equal(still!.remaining, 9)
    const checked = await backend.evaluate([generous, strict], 'check')
    t.same(checked.map((d) => d.remaining), [8, 0], 'check mode spans slots too')
  })

  t.test(`${driver}: a Fastify app with two limits per route on the cluster`, async (t) => {
    const namespace = uniqueNamespace('cl')
    const app = Fastify()
    await app.register(traffik, { backend: new RedisBackend(makeCluster[driver]!, { namespace }) })
    app.get('/:who', {
      config: {
        rateLimit: [
          { rate: '3/min', identifier: (request) => (request.params as { who: string }).who },
          { rate: '2/s', strategy: new TokenBucket(), identifier: (request) => (request.params as { who: string }).who }
        ]
      }
    }, async () => ({ ok: true }))
    await app.ready()
    t.teardown(async () => {
      await app.throttle.reset()
      await app.close()
    })
    const statuses: number[] = []
    for (const who of ['ann', 'ann', 'ann', 'ben', 'ben', 'ben']) statuses.push((await app.inject(`/${who}`)).statusCode)
    t.same(statuses, [200, 200, 429, 200, 200, 429])
    await app.throttle.reset()
    t.same(await keysPerMaster(`${namespace}:*`), [0, 0, 0], 'throttle reset cleared every master')
  })

  t.test(`${driver}: multiGet and multiSet across slots; the other primitives`, async (t) => {
    // About correctness, not latency: 30 keys over every slot in parallel can outlast 250 ms on a busy machine.
    const backend = await clusterBackend(t, driver, { timeoutMs: 5000 })
    const keys = Array.from({ length: 30 }, (_, i) => `m:{id${i}}`)
    await backend.multiSet(keys.map((key, i) => [key, String(i)]), 10_000)
    t.same(await backend.multiGet(keys), keys.map((_, i) => String(i)))
    t.ok(await admin.pttl(`${backend.namespace}:${keys[7]!}`) > 5000)
    t.same(await backend.multiGet([keys[0]!, 'missing:{x}', keys[29]!]), ['0', null, '29'])
    t.equal(await backend.incrementWithTtl('n:{a}', 2, 5000), 2)
    t.equal(await backend.increment('n:{a}', 3), 5)
    t.equal(await backend.decrement('n:{a}'), 4)
    t.equal(await backend.expire('n:{a}', 9000), true)
    t.equal(await backend.get('n:{a}'), '4')
    t.equal(await backend.delete('n:{a}'), true)
    const lock = backend.getLock('job:{1}', 1000)
    t.equal(await lock.acquire({ blocking: false }), true)
    t.equal(await backend.getLock('job:{1}', 1000).acquire({ blocking: false }), false)
    await lock.release()
    t.equal(await backend.getLock('job:{1}', 1000).acquire({ blocking: false }), true)
  })

  t.test(`${driver}: reset() and clearPrefix() sweep every master and leave foreign keys`, async (t) => {
    const backend = await clusterBackend(t, driver, { scanCount: 10 })
    const ns = backend.namespace
    for (let i = 0; i < 90; i++) await backend.set(`${i % 2 === 0 ? 'even' : 'odd'}:{user${i}}`, 'x')
    const foreign = Array.from({ length: 30 }, (_, i) => [`other-${ns}:{f${i}}`, `${ns}x:{f${i}}`, `plain${i}`]).flat()
    for (const key of foreign) await admin.set(key, 'foreign')
    t.teardown(async () => { for (const key of foreign) await admin.del(key) })
    const before = await keysPerMaster(`${ns}:*`)
    t.ok(before.every((n) => n > 0), `keys on every master: ${before.join(', ')}`)

    t.equal(await backend.clearPrefix('even:'), 45)
    t.same(await keysPerMaster(`${ns}:even:*`), [0, 0, 0])
    t.equal((await keysPerMaster(`${ns}:odd:*`)).reduce((a, b) => a + b, 0), 45)
    await backend.reset()
    t.same(await keysPerMaster(`${ns}:*`), [0, 0, 0], 'nothing of the namespace is left on any master')
    for (const key of foreign) t.equal(await admin.get(key), 'foreign', `foreign ${key} kept`)
  })
}
