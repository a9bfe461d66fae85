/**
 * Every strategy exported by the package, on a real memcached: decisions match the in-memory
 * backend for the same sequence (single limits, several limits, checks, refunds, costs), the
 * plugin serves them (headers, 429), two Fastify apps on two backends share one budget,
 * sub-second windows come back after the window, and resets clear them.
 * Strategies are discovered from the public exports, so new ones are covered automatically.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import * as traffik from '../../lib/index.js'
import { InMemoryBackend, ManualClock, MemcachedBackend, type Decision } from '../../lib/index.js'
import { type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { inMemoryAdmits } from '../../scripts/support/multi-process.js'
import { sharedMemcachedServers, uniqueNamespace } from '../../scripts/support/services.js'

const servers = await sharedMemcachedServers()

type StrategyClass = new (options?: Record<string, unknown>) => Strategy

/** Every strategy class the package exports (anything whose prototype has a `step`). */
const strategyClasses = Object.entries(traffik)
  .filter(([, value]) => typeof value === 'function' && typeof (value as { prototype?: { step?: unknown } }).prototype?.step === 'function')
  .map(([name, value]) => ({ name, Strategy: value as unknown as StrategyClass }))

/** The defaults of every strategy, plus variants whose options change the behaviour. */
const VARIANTS: Readonly<Record<string, ReadonlyArray<Record<string, unknown>>>> = {
  TokenBucketWithDebt: [{ maxDebt: 2 }],
  LeakyBucket: [{ burst: 3 }],
  LeakyBucketWithQueue: [{ maxDelayMs: 60_000 }],
  GCRA: [{ burst: 3 }],
  CalendarQuota: [{ period: 'day', zone: 'Europe/Berlin', rollover: { cap: 3 } }]
}
const cases = strategyClasses.flatMap(({ name, Strategy }) => [undefined, ...(VARIANTS[name] ?? [])].map((options) => ({
  label: options === undefined ? name : `${name}(${JSON.stringify(options)})`,
  name,
  options,
  make: () => new Strategy(options)
})))

t.test('the eight strategies, Concurrency and CalendarQuota are exported', async (t) => {
  t.same(strategyClasses.map((s) => s.name).sort(), [
    'CalendarQuota', 'Concurrency', 'FixedWindow', 'GCRA', 'LeakyBucket', 'LeakyBucketWithQueue', 'SlidingWindowCounter', 'SlidingWindowLog', 'TokenBucket', 'TokenBucketWithDebt'
  ])
})

async function memcachedBackend (t: Test, namespace = uniqueNamespace('ms'), options: Record<string, unknown> = {}): Promise<MemcachedBackend> {
  const backend = new MemcachedBackend(servers, { namespace, timeoutMs: 2000, ...options })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  return backend
}

interface Step {
  mode: EvaluateMode
  ops: Array<{ key: string, limit: number, cost?: number, windowMs?: number }>
  /** A refund of the charges of this earlier step (with their chargedAt). */
  refunds?: number
}

/** A sequence exercising hits, checks, refunds, costs and several limits at (nearly) one instant. */
const SCRIPT: Step[] = [
  ...Array.from({ length: 7 }, (): Step => ({ mode: 'hit', ops: [{ key: 'a:{c}', limit: 5 }] })),
  { mode: 'check', ops: [{ key: 'a:{c}', limit: 5, cost: 0 }] },
  { mode: 'refund', ops: [{ key: 'a:{c}', limit: 5 }], refunds: 0 },
  { mode: 'hit', ops: [{ key: 'a:{c}', limit: 5 }] },
  { mode: 'hit', ops: [{ key: 'a:{c}', limit: 5 }] },
  ...Array.from({ length: 4 }, (): Step => ({ mode: 'hit', ops: [{ key: 'b:{c}', limit: 5 }, { key: 'c:{c}', limit: 2 }] })),
  { mode: 'check', ops: [{ key: 'b:{c}', limit: 5, cost: 0 }, { key: 'c:{c}', limit: 2, cost: 0 }] },
  { mode: 'hit', ops: [{ key: 'd:{c}', limit: 5, cost: 3 }] },
  { mode: 'hit', ops: [{ key: 'd:{c}', limit: 5, cost: 3 }] },
  { mode: 'hit', ops: [{ key: 'd:{c}', limit: 5, cost: 2 }] },
  { mode: 'hit', ops: [{ key: 'e:{c}', limit: 5, cost: 7 }] },
  { mode: 'hit', ops: [{ key: 'f:{c}', limit: 5, cost: 0 }] }
]

/** The fields that must agree (times may differ by the few ms the real run takes). */
function comparable (d: Decision): unknown {
  return { allowed: d.allowed, remaining: d.remaining, never: d.retryAfterMs === -1, queued: (d.delayMs ?? 0) > 0 }
}

t.test('every strategy decides on memcached exactly as in memory (hits, checks, refunds, costs, several limits)', async (t) => {
  const backend = await memcachedBackend(t)
  for (const { label, make } of cases) {
    const strategy = make()
    const start = Date.now()
    const memory = new InMemoryBackend({ clock: new ManualClock(start) })
    const expected: unknown[] = []
    const actual: unknown[] = []
    const memoryDecisions: Decision[][] = []
    const memcachedDecisions: Decision[][] = []
    for (const step of SCRIPT) {
      // A refund gives back the charge of an earlier step, stamped by each backend's own clock.
      const ops = (decisions: Decision[][]): EvaluateOp[] => step.ops.map((o, i) => {
        const chargedAt = step.refunds === undefined ? undefined : decisions[step.refunds]![i]!.decidedAt
        return { strategy, key: `${label}/${o.key}`, limit: o.limit, windowMs: o.windowMs ?? 60_000, cost: o.cost ?? 1, chargedAt }
      })
      memoryDecisions.push(memory.evaluate(ops(memoryDecisions), step.mode))
      memcachedDecisions.push(await backend.evaluate(ops(memcachedDecisions), step.mode))
      expected.push(memoryDecisions.at(-1)!.map(comparable))
      actual.push(memcachedDecisions.at(-1)!.map(comparable))
    }
    t.same(actual, expected, label)
  }
})

async function appOn (t: Test, backend: traffik.ThrottleBackend, strategy: Strategy, rate: string, uid = 'limited'): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik.traffik, { backend })
  app.get('/limited', { config: { rateLimit: { uid, rate, strategy, identifier: () => 'client' } } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

/**
 * Defaults only: a queue with a long `maxDelayMs` would make requests wait for real. Through the
 * plugin, Concurrency gives each slot back when the response ends, so sequential requests never
 * run out; test/throttle/concurrency.test.ts holds requests in flight on memcached instead.
 */
const defaults = cases.filter((c) => c.options === undefined && c.make().heldUntilResponse !== true)

t.test('every strategy through the plugin: headers, 429 with retry-after, the in-memory count', async (t) => {
  const backend = await memcachedBackend(t)
  for (const { label, name, options, make } of defaults) {
    const app = await appOn(t, backend, make(), '5/min', `plugin-${label}`)
    const statuses: number[] = []
    for (let i = 0; i < 8; i++) {
      const reply = await app.inject('/limited')
      statuses.push(reply.statusCode)
      t.equal(reply.headers['x-ratelimit-limit'], '5', `${label}: limit header`)
      if (reply.statusCode === 429) t.ok(Number(reply.headers['retry-after']) >= 1, `${label}: retry-after on 429`)
    }
    const expected = inMemoryAdmits({ backend: { kind: 'memory' }, strategy: { name, options }, rate: '5/min' }, 8)
    t.equal(statuses.filter((s) => s === 200).length, expected, `${label}: ${expected} of 8 admitted`)
    t.equal(statuses.filter((s) => s !== 200 && s !== 429).length, 0)
  }
})

t.test('two Fastify apps with two backends on one memcached share every counter', async (t) => {
  const namespace = uniqueNamespace('shared')
  const one = await memcachedBackend(t, namespace)
  const two = await memcachedBackend(t, namespace)
  for (const { label, name, options, make } of defaults) {
    const strategy = make()
    const apps = [await appOn(t, one, strategy, '6/min', `shared-${label}`), await appOn(t, two, strategy, '6/min', `shared-${label}`)]
    let admitted = 0
    for (let i = 0; i < 12; i++) if ((await apps[i % 2]!.inject('/limited')).statusCode === 200) admitted++
    t.equal(admitted, inMemoryAdmits({ backend: { kind: 'memory' }, strategy: { name, options }, rate: '6/min' }, 12), `${label}: one budget across both apps`)
  }
})

t.test('sub-second windows: exact within the window, full capacity again after it (on every strategy)', async (t) => {
  // memcached stores expiry in whole seconds; the decisions must still follow the 800 ms window.
  // The host clock is a ManualClock so a burst takes no time however loaded the machine is (a
  // refilling bucket would otherwise admit one more when six round trips outlast 200 ms).
  const windowMs = 800
  const clock = new ManualClock(Math.ceil(Date.now() / windowMs) * windowMs + 5)
  class ClockedMemcachedBackend extends MemcachedBackend {
    protected override now (): number { return clock.now() }
  }
  const backend = new ClockedMemcachedBackend(servers, { namespace: uniqueNamespace('ms-sub'), timeoutMs: 2000 })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  const burst = async (strategy: Strategy, key: string): Promise<number> => {
    let admitted = 0
    for (let i = 0; i < 6; i++) {
      const [decision] = await backend.evaluate([{ strategy, key, limit: 4, windowMs, cost: 1 }], 'hit')
      if (decision!.allowed) admitted++
    }
    return admitted
  }
  // A calendar quota's window is its calendar period, not the rate's: its period changes are test/strategies/calendar-quota.test.ts.
  const measured = cases.filter(({ name }) => name !== 'CalendarQuota')
  const first = await Promise.all(measured.map(async ({ label, make }) => {
    const strategy = make()
    return { strategy, admitted: await burst(strategy, `sub-${label}:{c}`) }
  }))
  clock.advance(2 * windowMs)
  const second = await Promise.all(measured.map(async ({ label }, i) => await burst(first[i]!.strategy, `sub-${label}:{c}`)))
  measured.forEach(({ label, name, options }, i) => {
    const expected = inMemoryAdmits({ backend: { kind: 'memory' }, strategy: { name, options }, rate: `4/${windowMs}ms` }, 6)
    t.equal(first[i]!.admitted, expected, `${label}: ${expected} of 6 in one ${windowMs} ms window`)
    t.equal(second[i], expected, `${label}: the same again once the window (and any debt) has passed`)
  })
})

t.test('fastify.throttle.reset() and throttle.reset() clear memcached counters for every strategy', async (t) => {
  const backend = await memcachedBackend(t)
  const other = await memcachedBackend(t)
  for (const { label, make } of defaults) {
    const strategy = make()
    const app = await appOn(t, backend, strategy, '1/min', `reset-${label}`)
    const neighbour = await appOn(t, other, strategy, '1/min', `reset-${label}`)
    t.equal((await app.inject('/limited')).statusCode, 200)
    t.equal((await app.inject('/limited')).statusCode, 429, `${label}: limited`)
    t.equal((await neighbour.inject('/limited')).statusCode, 200)
    await app.throttle.reset()
    t.equal((await app.inject('/limited')).statusCode, 200, `${label}: allowed again after fastify.throttle.reset()`)
    t.equal((await neighbour.inject('/limited')).statusCode, 429, `${label}: another namespace kept its counter`)
    await app.throttle.get(`reset-${label}`)!.reset()
    t.equal((await app.inject('/limited')).statusCode, 200, `${label}: allowed again after throttle.reset()`)
    t.equal((await app.inject('/limited')).statusCode, 429)
    await app.throttle.get(`reset-${label}`)!.reset({ ip: '192.0.2.1' })
    t.equal((await app.inject('/limited')).statusCode, 200, `${label}: allowed again after throttle.reset(request) (one client)`)
  }
})

t.test('throttle.reset(request) from another process finds counter windows it never used itself', async (t) => {
  const namespace = uniqueNamespace('del')
  const serving = await memcachedBackend(t, namespace)
  const admin = await memcachedBackend(t, namespace)
  for (const { label, make } of defaults) {
    const app = await appOn(t, serving, make(), '1/min', `del-${label}`)
    t.equal((await app.inject('/limited')).statusCode, 200)
    t.equal((await app.inject('/limited')).statusCode, 429, `${label}: limited`)
    await sleep(30) // the window length is recorded in the background
    const adminApp = await appOn(t, admin, make(), '1/min', `del-${label}`)
    await adminApp.throttle.get(`del-${label}`)!.reset({ ip: '192.0.2.1' })
    t.equal((await app.inject('/limited')).statusCode, 200, `${label}: the client was reset from the other process`)
  }
})

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
