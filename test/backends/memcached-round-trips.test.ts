/**
 * Round trips per decision on MemcachedBackend, for every exported strategy: admitted, rejected
 * and checked decisions, and a 1000-request burst on one hot key from four backends (the CAS path
 * under contention). Requests are counted on the memjs clients (each backend gets its own client,
 * like a process of its own, with `perform` wrapped), and cross-checked against memcached's own
 * `stats`. Then the measurement behind the choice of CAS over an `add`-based lock for stateful
 * strategies: the same decisions made both ways. The tables are printed as TAP comments.
 */
import memjs from 'memjs'
import t from 'tap'
import * as traffik from '../../lib/index.js'
import { MemcachedBackend, ThrottleBackend, type Decision } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { startMemcached, uniqueNamespace } from '../../scripts/support/services.js'

const server = await startMemcached()
const list = `${server.host}:${server.port}`
const quiet = { log () {} }
const statsClient = memjs.Client.create(list, { logger: quiet })
const clients: Array<memjs.Client> = [statsClient]
t.teardown(async () => {
  for (const client of clients) client.close()
  await server.stop()
})

/** Requests sent by every counted client so far. */
let sent = 0

/** A memjs client (one per backend, as one per process) whose requests are counted. */
function countedClient (): memjs.Client {
  const client = memjs.Client.create(list, { logger: quiet, timeout: 5 })
  const perform = client.perform.bind(client)
  client.perform = (...args: Parameters<typeof perform>) => {
    sent++
    perform(...args)
  }
  clients.push(client)
  return client
}

/** Requests memcached itself served so far (gets, storage commands, incr/decr, touch, delete). */
async function served (): Promise<number> {
  const stats = await new Promise<Record<string, string>>((resolve, reject) => {
    statsClient.stats((error, _server, values) => {
      if (error !== null || values === null) reject(error ?? new Error('no stats'))
      else resolve(values)
    })
  })
  const counters = ['cmd_get', 'cmd_set', 'cmd_touch', 'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses', 'delete_hits', 'delete_misses']
  return counters.reduce((sum, name) => sum + Number(stats[name] ?? 0), 0)
}

/** Requests the backends sent while `run` ran. */
async function count (run: () => Promise<unknown>): Promise<number> {
  const before = sent
  await run()
  return sent - before
}

const strategies = Object.entries(traffik)
  .filter(([, value]) => typeof value === 'function' && typeof (value as { prototype?: { step?: unknown } }).prototype?.step === 'function')
  .map(([name, value]) => ({ name, strategy: new (value as new () => Strategy)() }))
  .sort((a, b) => a.name.localeCompare(b.name))

async function newBackend (options: Record<string, unknown> = {}): Promise<MemcachedBackend> {
  // A long refresh keeps the background generation read out of the counts (it is 1 get per second per process).
  const backend = new MemcachedBackend(countedClient(), { namespace: uniqueNamespace('rt'), generationRefreshMs: 600_000, ...options })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  return backend
}

t.test('the client-side count matches what memcached served, for every command kind', async (t) => {
  const backend = await newBackend()
  const both = async (run: () => Promise<unknown>): Promise<[number, number]> => {
    const before = await served()
    const client = await count(run)
    return [client, (await served()) - before]
  }
  t.same(await both(async () => { await backend.set('a', '1') }), [1, 1], 'set')
  t.same(await both(async () => { await backend.get('a') }), [1, 1], 'get')
  t.same(await both(async () => { await backend.increment('a') }), [1, 1], 'incr')
  t.same(await both(async () => { await backend.decrement('a') }), [1, 1], 'decr')
  t.same(await both(async () => { await backend.expire('a', 1000) }), [1, 1], 'touch')
  t.same(await both(async () => { await backend.delete('a') }), [2, 2], 'delete (a fresh read of the generation item, then the delete)')
  const lock = backend.getLock('l', 1000)
  t.same(await both(async () => { await lock.acquire() }), [1, 1], 'add')
  t.same(await both(async () => { await lock.release() }), [2, 2], 'get + CAS delete')
  const [client] = await both(async () => { await backend.incrementWithTtl('new', 1, 1000) })
  t.equal(client, 1, 'an incr that creates its key is one request (memcached\'s stats do not count it as an incr)')
})

const N = 40
const DAY = 86_400_000

t.test('round trips per decision, per strategy (admitted, rejected, check)', async (t) => {
  const backend = await newBackend()
  const rows: string[] = []
  for (const { name, strategy } of strategies) {
    const op = (key: string, limit: number, cost = 1): EvaluateOp => ({ strategy, key: `${name}:{${key}}`, limit, windowMs: DAY, cost })
    // Admitted: a limit nothing reaches (GCRA and LeakyBucket admit one at a time without burst,
    // so every admitted decision there is on a fresh client).
    const smooth = name === 'GCRA' || name === 'LeakyBucket' || name === 'LeakyBucketWithQueue'
    // Steady state: the first counter decision of a window length records it (once per namespace, in the background).
    await backend.evaluate([op('warm-up', 10_000)], 'hit')
    await new Promise((resolve) => setTimeout(resolve, 20))
    const admitted = await count(async () => {
      for (let i = 0; i < N; i++) {
        const [d] = await backend.evaluate([op(smooth ? `fresh${i}` : 'open', 10_000)], 'hit')
        if (!d!.allowed) throw new Error(`${name}: expected an admission`)
      }
    }) / N
    await backend.evaluate([op('full', 1)], 'hit')
    const rejected = await count(async () => {
      for (let i = 0; i < N; i++) {
        const [d] = await backend.evaluate([op('full', 1)], 'hit')
        if (d!.allowed) throw new Error(`${name}: expected a rejection`)
      }
    }) / N
    const checked = await count(async () => {
      for (let i = 0; i < N; i++) await backend.evaluate([op('full', 1, 0)], 'check')
    }) / N
    rows.push(`| ${name} | ${strategy.counter === undefined ? 'CAS' : 'counter'} | ${admitted} | ${rejected} | ${checked} |`)
    const expected = strategy.counter === undefined
      ? [2, 1, 1] // get + CAS write; get only; get only
      : [strategy.counter.windows.length, strategy.counter.windows.length + 1, strategy.counter.windows.length] // incr (+ get of the previous window); + decr to take a rejection back
    t.same([admitted, rejected, checked], expected, `${name}: ${admitted} / ${rejected} / ${checked}`)
  }
  t.comment(['', '| strategy | path | admitted | rejected | check |', '|---|---|---|---|---|', ...rows].join('\n'))
})

/** `total` concurrent decisions on one key from four backends sharing a namespace (four "processes"). */
async function burst (strategy: Strategy, decide: (backend: MemcachedBackend, op: EvaluateOp) => Promise<Decision[]>, options: Record<string, unknown> = {}, total = 1000, limit = 100): Promise<{ allowed: number, errors: number, requests: number, ms: number }> {
  const namespace = uniqueNamespace('burst')
  const backends = await Promise.all([0, 1, 2, 3].map(async () => await newBackend({ namespace, ...options })))
  const op: EvaluateOp = { strategy, key: 'hot:{c}', limit, windowMs: DAY, cost: 1 }
  let allowed = 0
  let errors = 0
  const started = performance.now()
  const requests = await count(async () => {
    await Promise.all(Array.from({ length: total }, async (_, i) => {
      try {
        if ((await decide(backends[i % 4]!, op))[0]!.allowed) allowed++
      } catch {
        errors++
      }
    }))
  })
  return { allowed, errors, requests, ms: Math.round(performance.now() - started) }
}

t.test('round trips under contention: 1000 concurrent decisions on one key from four backends', async (t) => {
  const rows: string[] = []
  for (const { name, strategy } of strategies) {
    const result = await burst(strategy, async (backend, op) => await backend.evaluate([op], 'hit'), { timeoutMs: 5000 })
    rows.push(`| ${name} | ${result.allowed} | ${result.errors} | ${(result.requests / 1000).toFixed(2)} | ${result.ms} |`)
    t.equal(result.errors, 0, `${name}: no failures`)
    t.ok(result.requests / 1000 <= 3, `${name}: ${(result.requests / 1000).toFixed(2)} requests per decision`)
  }
  t.comment(['', '| strategy | admitted | errors | memcached requests per decision | ms |', '|---|---|---|---|---|', ...rows].join('\n'))
})

/** The generic evaluate of the base class on this backend's primitives: lock (add), read, step, write, token-checked release (get + CAS delete). */
async function lockBased (backend: MemcachedBackend, op: EvaluateOp): Promise<Decision[]> {
  return await ThrottleBackend.prototype.evaluate.call(backend, [op], 'hit')
}

async function casBased (backend: MemcachedBackend, op: EvaluateOp): Promise<Decision[]> {
  return await backend.evaluate([op], 'hit')
}

t.test('CAS against an add-based lock (token-checked release) for stateful strategies', async (t) => {
  const rows: string[] = []
  const chosen = strategies.filter((s) => ['TokenBucket', 'SlidingWindowLog'].includes(s.name))
  for (const { name, strategy } of chosen) {
    // One client, one request at a time: the cost of the protocol itself.
    const backend = await newBackend({ timeoutMs: 5000 })
    for (const [method, decide] of [['CAS', casBased], ['lock', lockBased]] as const) {
      const op = (key: string, limit: number): EvaluateOp => ({ strategy, key: `${method}-${name}:{${key}}`, limit, windowMs: DAY, cost: 1 })
      const admitted = await count(async () => { for (let i = 0; i < N; i++) await decide(backend, op('open', 10_000)) }) / N
      await decide(backend, op('full', 1))
      const rejected = await count(async () => { for (let i = 0; i < N; i++) await decide(backend, op('full', 1)) }) / N
      rows.push(`| ${name} | ${method} | sequential | ${admitted} admitted, ${rejected} rejected | - | - |`)
      if (method === 'CAS') t.same([admitted, rejected], [2, 1], `${name} CAS: 2 requests per admission, 1 per rejection`)
      else t.same([admitted, rejected], [5, 4], `${name} lock: add, get, set, get, delete per admission; no set on rejection`)
    }
    // Contention: four "processes", 40 and 1000 concurrent requests for one client, limit 20 / 100.
    for (const [total, limit] of [[40, 20], [1000, 100]] as const) {
      for (const [method, decide] of [['CAS', casBased], ['lock', lockBased]] as const) {
        const result = await burst(strategy, decide, { timeoutMs: 5000 }, total, limit)
        rows.push(`| ${name} | ${method} | ${total} concurrent | ${(result.requests / total).toFixed(2)} | ${result.allowed} of ${limit} (${result.errors} failed) | ${result.ms} |`)
        if (method === 'CAS') t.same([result.allowed, result.errors], [limit, 0], `${name} CAS, ${total} concurrent: exactly ${limit} admitted, no failures`)
        else t.ok(result.allowed <= limit, `${name} lock, ${total} concurrent: never more than ${limit} (${result.allowed} admitted, ${result.errors} gave up waiting for the lock)`)
      }
    }
  }
  t.comment(['', '| strategy | method | load | memcached requests per decision | admitted | ms |', '|---|---|---|---|---|---|', ...rows].join('\n'))
})
