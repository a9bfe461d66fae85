/**
 * Every strategy exported by the package, on RedisBackend against a real redis-server:
 * two Fastify apps with two backends on one server share one budget, and every decision is
 * exactly one round trip (counted with INFO commandstats, cross-checked with MONITOR).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t from 'tap'
import * as traffikModule from '../../lib/index.js'
import { FixedWindow, InMemoryBackend, ManualClock, RedisBackend, TokenBucket, parseRate, traffik } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { sharedRedisUrl, startRedis, uniqueNamespace } from '../../scripts/support/services.js'
import { redisDrivers } from '../helpers/redis-drivers.js'

/** Every class exported by the package whose instances are strategies (step + Lua twin). */
function exportedStrategies (): Array<[string, new () => Strategy]> {
  return Object.entries(traffikModule).filter(([, value]) => {
    if (typeof value !== 'function' || typeof (value as { prototype?: { step?: unknown } }).prototype?.step !== 'function') return false
    return typeof (new (value as new () => Strategy)()).lua === 'string'
  }) as Array<[string, new () => Strategy]>
}

const strategies = exportedStrategies()
const url = await sharedRedisUrl()

t.test('the package exports the strategies this file runs over', async (t) => {
  t.ok(strategies.length >= 1, strategies.map(([name]) => name).join(', '))
  t.ok(strategies.some(([name]) => name === 'FixedWindow'))
})

/** What one in-memory process answers to `count` hits at one instant. */
function inMemorySequence (Strategy: new () => Strategy, rate: string, count: number): boolean[] {
  const backend = new InMemoryBackend({ clock: new ManualClock() })
  const strategy = new Strategy()
  const { limit, windowMs } = parseRate(rate)
  return Array.from({ length: count }, () => backend.evaluate([{ strategy, key: 'k', limit, windowMs, cost: 1 }], 'hit')[0]!.allowed)
}

async function appOn (namespace: string, Strategy: new () => Strategy, rate: string): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend: new RedisBackend(url, { namespace }) })
  app.get('/', { config: { rateLimit: { rate, strategy: new Strategy(), identifier: () => 'one-client' } } }, async () => ({ ok: true }))
  await app.ready()
  return app
}

// Through the plugin, Concurrency gives each slot back when the response ends, so sequential
// requests never run out; test/throttle/concurrency.test.ts holds requests in flight on Redis.
for (const [name, Strategy] of strategies.filter(([, Strategy]) => new Strategy().heldUntilResponse !== true)) {
  t.test(`${name}: two apps with two RedisBackends on one server share one budget`, async (t) => {
    const namespace = uniqueNamespace()
    const rate = '5/hour'
    const a = await appOn(namespace, Strategy, rate)
    const b = await appOn(namespace, Strategy, rate)
    t.teardown(async () => {
      await a.throttle.reset()
      await a.close()
      await b.close()
    })
    const expected = inMemorySequence(Strategy, rate, 12)
    const seen: boolean[] = []
    for (let i = 0; i < 12; i++) {
      const res = await (i % 2 === 0 ? a : b).inject('/')
      t.ok(res.statusCode === 200 || res.statusCode === 429, `status ${res.statusCode}`)
      seen.push(res.statusCode === 200)
    }
    t.same(seen, expected, 'the alternating requests are answered as one process answers them')
    t.ok(expected.filter(Boolean).length < 12, 'the budget runs out within the burst')
    t.equal((await b.inject('/')).statusCode, 429, 'app B sees what app A consumed')
  })
}

// ---- round trips ----

type Stats = Map<string, number>

async function commandStats (client: Redis): Promise<Stats> {
  const info = await client.info('commandstats')
  const stats: Stats = new Map()
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats.set(match[1]!, Number(match[2]))
  return stats
}

function delta (before: Stats, after: Stats): Stats {
  const changed: Stats = new Map()
  for (const [name, calls] of after) {
    const diff = calls - (before.get(name) ?? 0)
    if (diff !== 0 && name !== 'info') changed.set(name, diff)
  }
  return changed
}

interface RoundTrips {
  decisions: number
  /** EVALSHA + EVAL calls: the commands the client sent. */
  scripts: number
  /** Commands the client sent directly, seen by MONITOR (not from Lua). */
  monitored: number
  changed: Stats
}

/**
 * Runs `decisions` evaluate calls and counts what reached the server. Commands run inside a
 * script are counted by commandstats too, so the count checks that TIME ran once per decision
 * and GET once per op, and that nothing but scripts (and what they run) was called: then the
 * script calls are the round trips. MONITOR confirms it from the other side.
 */
async function countRoundTrips (backend: RedisBackend, admin: Redis, monitorOf: Redis, ops: EvaluateOp[], mode: 'hit' | 'check', decisions: number): Promise<RoundTrips> {
  await backend.evaluate(ops, mode) // first use: the script is sent in full once
  const monitor = await monitorOf.monitor()
  let monitored = 0
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua' && !/^(info|ping)$/i.test(args[0] ?? '')) monitored++
  })
  await new Promise((resolve) => setTimeout(resolve, 20))
  const before = await commandStats(admin)
  for (let i = 0; i < decisions; i++) await backend.evaluate(ops, mode)
  const after = await commandStats(admin)
  await new Promise((resolve) => setTimeout(resolve, 50))
  monitor.disconnect()
  const changed = delta(before, after)
  return { decisions, scripts: (changed.get('evalsha') ?? 0) + (changed.get('eval') ?? 0), monitored, changed }
}

for (const driver of redisDrivers) {
  t.test(`${driver}: exactly one round trip per decision, for every strategy and for several limits at once`, async (t) => {
  // A private server: commandstats of a shared one would count other tests' commands.
    const server = await startRedis()
    const serverUrl = `redis://${server.host}:${server.port}`
    const admin = new Redis(serverUrl)
    const monitorOf = new Redis(serverUrl)
    // About counting, not latency: a loaded machine (MONITOR on) can outlast the 250 ms default.
    const backend = new RedisBackend(serverUrl, { namespace: uniqueNamespace(), driver, timeoutMs: 5000 })
    await backend.initialize()
    t.teardown(async () => {
      await backend.close()
      await admin.quit()
      await monitorOf.quit()
      await server.stop()
    })
    const N = 25
    const rows: string[] = ['| strategy | mode | limits | decisions | EVALSHA/EVAL calls | direct commands (MONITOR) | round trips per decision |', '|---|---|---|---|---|---|---|']
    const cases: Array<{ label: string, ops: EvaluateOp[], mode: 'hit' | 'check' }> = []
    for (const [name, Strategy] of strategies) {
      const op = { strategy: new Strategy(), key: `rt:${name}:{client}`, limit: 1000, windowMs: 3_600_000, cost: 1 }
      cases.push({ label: name, ops: [op], mode: 'hit' })
      // 'check' runs the same script: counted through ioredis, so the file stays within its time.
      if (driver === 'ioredis') cases.push({ label: name, ops: [op], mode: 'check' })
    }
    cases.push({
      label: strategies.map(([name]) => name).join(' + '),
      ops: strategies.map(([name, Strategy]) => ({ strategy: new Strategy(), key: `rt-all:${name}:{client}`, limit: 1000, windowMs: 3_600_000, cost: 1 })),
      mode: 'hit'
    })
    for (const { label, ops, mode } of cases) {
      const counted = await countRoundTrips(backend, admin, monitorOf, ops, mode, N)
      const scriptCommands = new Set(['evalsha', 'eval', 'time', 'get', 'set', 'del'])
      const unexpected = [...counted.changed.keys()].filter((name) => !scriptCommands.has(name))
      t.same(unexpected, [], `${label} ${mode}: nothing but the script and what it runs`)
      t.equal(counted.changed.get('time'), N, `${label} ${mode}: the server clock is read once per decision`)
      t.equal(counted.changed.get('get'), N * ops.length, `${label} ${mode}: one GET per limit, inside the script`)
      t.ok((counted.changed.get('set') ?? 0) + (counted.changed.get('del') ?? 0) <= (mode === 'hit' ? N * ops.length : 0), `${label} ${mode}: writes only on hits`)
      t.equal(counted.scripts, N, `${label} ${mode}: one EVALSHA per decision`)
      t.equal(counted.monitored, N, `${label} ${mode}: MONITOR sees one command per decision`)
      rows.push(`| ${label} | ${mode} | ${ops.length} | ${N} | ${counted.scripts} | ${counted.monitored} | ${counted.scripts / N} |`)
    }
    t.comment(`${driver}: round trips per decision (INFO commandstats, MONITOR):\n${rows.join('\n')}`)
  })

  t.test(`${driver}: through Fastify, a request with two limits costs one round trip`, async (t) => {
    const server = await startRedis()
    const serverUrl = `redis://${server.host}:${server.port}`
    const admin = new Redis(serverUrl)
    const app = Fastify()
    await app.register(traffik, { backend: new RedisBackend(serverUrl, { namespace: uniqueNamespace(), driver }) })
    app.get('/', {
      config: {
        rateLimit: [
          { rate: '1000/hour', strategy: new FixedWindow(), identifier: () => 'c' },
          { rate: '500/min', strategy: new TokenBucket(), identifier: () => 'c' }
        ]
      }
    }, async () => ({ ok: true }))
    await app.ready()
    t.teardown(async () => {
      await app.close()
      await admin.quit()
      await server.stop()
    })
    await app.inject('/')
    const before = await commandStats(admin)
    for (let i = 0; i < 20; i++) t.equal((await app.inject('/')).statusCode, 200)
    const changed = delta(before, await commandStats(admin))
    t.equal((changed.get('evalsha') ?? 0) + (changed.get('eval') ?? 0), 20, 'one script per request')
    t.equal(changed.get('time'), 20)
    t.equal(changed.get('get'), 40, 'both limits read inside the one script')
    t.same([...changed.keys()].filter((name) => !['evalsha', 'eval', 'time', 'get', 'set', 'del'].includes(name)), [])
  })
}
