/**
 * Leases (the throttle option `lease`, lib/backends/lease-table.ts) in the generic layer: a custom
 * backend (the guard applies leases on every guarded backend) in front of an in-memory store, on
 * a manual clock.
 * - Property (fast-check), FixedWindow: against a reference model of the window (units admitted per
 *   window), random timelines of hits of cost 1-3 on a few keys, refunds, deletes and waits: never
 *   more than the limit per window; a rejection only when the store plus this process's parked
 *   units cannot hold the cost; with cost 1 every answer is the exact store's; after close() the
 *   store holds exactly what was admitted in the window.
 * - Property, TokenBucket: over every span of the timeline, admitted <= burst + refill + the bound.
 * - Rules: cold keys exact, K bounded, all-or-nothing over several limits, checks and refunds from
 *   the lease, what forgets a lease, the block cache beside leases, registration refusals.
 */
import fc from 'fast-check'
import t from 'tap'
import Fastify from 'fastify'
import {
  FixedWindow, GCRA, InMemoryBackend, LeakyBucket, LeakyBucketWithQueue, ManualClock, SlidingWindowCounter, SlidingWindowLog, ThrottleBackend,
  TokenBucket, TokenBucketWithDebt, Concurrency, CalendarQuota, traffik, type Decision
} from '../../lib/index.js'
import type { EvaluateOp } from '../../lib/backend.js'
import { CountingBackend } from '../helpers/counting-backend.js'
import type { LeasePolicy } from '../../types/backend.js'
import { compileLease, leaseFor } from '../../lib/throttle/lease-option.js'
import type { Strategy } from '../../types/strategy.js'

function policy (strategy: Strategy, clock: ManualClock, options: Record<string, unknown> = {}): LeasePolicy {
  return leaseFor('t', compileLease({ clock, ...options })!, strategy, undefined)
}

/** A CountingBackend on a manual clock, and a leased op on it (maxUnits 5, maxShare 1, ttlMs 1000). */
function leased (strategy: Strategy, key: string, limit: number, clock = new ManualClock()): { clock: ManualClock, backend: CountingBackend, op: EvaluateOp } {
  const backend = new CountingBackend(clock)
  const lease = policy(strategy, clock, { maxUnits: 5, maxShare: 1, ttlMs: 1000 })
  return { clock, backend, op: { strategy, key, limit, windowMs: 3_600_000, cost: 1, lease } }
}

/** `n` hits one after another, `stepMs` apart on the clock; resolves how many were admitted. */
async function hitsApart (backend: CountingBackend, clock: ManualClock, op: EvaluateOp, n: number, stepMs: number): Promise<number> {
  let admitted = 0
  for (let i = 0; i < n; i++) {
    if ((await backend.evaluate([op], 'hit'))[0]!.allowed) admitted++
    clock.advance(stepMs)
  }
  return admitted
}

type Step =
  | { kind: 'wait', ms: number }
  | { kind: 'hit', client: number, cost: number }
  | { kind: 'refund' }
  | { kind: 'delete', client: number }

const steps = (maxCost: number): fc.Arbitrary<Step[]> => fc.array(fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 1500 })) }) },
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('hit' as const), client: fc.integer({ min: 0, max: 1 }), cost: fc.integer({ min: 1, max: maxCost }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refund' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), client: fc.integer({ min: 0, max: 1 }) }) }
), { minLength: 1, maxLength: 120 })

for (const maxCost of [1, 3]) {
  t.test(`FixedWindow with leases, costs 1-${maxCost}: against the window model`, async (t) => {
    let storeHits = 0
    let hits = 0
    await fc.assert(fc.asyncProperty(steps(maxCost), fc.integer({ min: 4, max: 40 }), fc.integer({ min: 1, max: 8 }), async (timeline, limit, maxUnits) => {
      const clock = new ManualClock()
      const backend = new CountingBackend(clock)
      await backend.initialize()
      const exact = new InMemoryBackend({ clock })
      const strategy = new FixedWindow()
      const lease = policy(strategy, clock, { maxUnits, maxShare: 1, ttlMs: 300 })
      const windowMs = 1000
      // The model: units admitted per client in the current window.
      const admitted = new Map<number, { window: number, units: number }>()
      const charges: Array<{ client: number, op: EvaluateOp, window: number }> = []
      const used = (client: number): number => {
        const entry = admitted.get(client)
        const window = Math.floor(clock.now() / windowMs)
        return entry === undefined || entry.window !== window ? 0 : entry.units
      }
      const add = (client: number, units: number): void => {
        const window = Math.floor(clock.now() / windowMs)
        admitted.set(client, { window, units: used(client) + units })
      }
      for (const step of timeline) {
        if (step.kind === 'wait') clock.advance(step.ms)
        else if (step.kind === 'delete') {
          await backend.delete(`k:{${step.client}}`)
          await exact.delete(`k:{${step.client}}`)
          admitted.delete(step.client)
          for (let i = charges.length - 1; i >= 0; i--) if (charges[i]!.client === step.client) charges.splice(i, 1)
        } else if (step.kind === 'refund') {
          const charge = charges.pop()
          if (charge === undefined) continue
          await backend.evaluate([charge.op], 'refund')
          await exact.evaluate([charge.op], 'refund')
          if (charge.window === Math.floor(clock.now() / windowMs)) add(charge.client, -charge.op.cost)
        } else {
          const op: EvaluateOp = { strategy, key: `k:{${step.client}}`, limit, windowMs, cost: step.cost, lease }
          const { lease: _, ...plain } = op
          const [got] = await backend.evaluate([op], 'hit')
          const [want] = await exact.evaluate([plain], 'hit')
          hits++
          const before = used(step.client)
          if (got!.allowed) {
            add(step.client, step.cost)
            charges.push({ client: step.client, op: { ...op, chargedAt: got!.decidedAt }, window: Math.floor(clock.now() / windowMs) })
            if (!want!.allowed) throw new Error('the lease admitted what the exact store refused')
          } else if (want!.allowed) {
            // Parked units (fewer than the cost) are all the lease may withhold.
            if (before + step.cost <= limit - step.cost) throw new Error(`refused at ${before} used of ${limit}, cost ${step.cost}`)
            await exact.evaluate([{ ...plain, chargedAt: want!.decidedAt }], 'refund')
          }
          if (used(step.client) > limit) throw new Error(`over the limit: ${used(step.client)} of ${limit}`)
          if (maxCost === 1 && got!.allowed !== want!.allowed) throw new Error('cost 1: not the exact answer')
          if (got!.remaining < 0 || got!.remaining > limit || !Number.isInteger(got!.remaining)) throw new Error(`remaining ${got!.remaining}`)
        }
      }
      storeHits += backend.hits
      await backend.close()
      for (const client of [0, 1]) {
        const [stored] = await backend.store.evaluate([{ strategy, key: `k:{${client}}`, limit, windowMs, cost: 0 }], 'check')
        if (stored!.remaining !== limit - used(client)) throw new Error(`after close the store holds ${limit - stored!.remaining}, admitted ${used(client)}`)
      }
    }), { numRuns: 150 })
    t.ok(storeHits < hits, `the store took ${storeHits} hits for ${hits} decisions`)
  })
}

t.test('TokenBucket with leases: over every span, admitted <= burst + refill + maxUnits', async (t) => {
  await fc.assert(fc.asyncProperty(steps(2), fc.integer({ min: 4, max: 40 }), fc.integer({ min: 1, max: 8 }), async (timeline, limit, maxUnits) => {
    const clock = new ManualClock()
    const backend = new CountingBackend(clock)
    const strategy = new TokenBucket()
    const lease = policy(strategy, clock, { maxUnits, maxShare: 1, ttlMs: 300 })
    const windowMs = 1000
    const admissions: Array<{ at: number, units: number }> = []
    for (const step of timeline) {
      if (step.kind === 'wait') clock.advance(step.ms)
      else if (step.kind === 'hit' && step.client === 0) {
        const [got] = await backend.evaluate([{ strategy, key: 'k:{0}', limit, windowMs, cost: step.cost, lease }], 'hit')
        if (got!.allowed) admissions.push({ at: clock.now(), units: step.cost })
      }
    }
    for (let i = 0; i < admissions.length; i++) {
      let units = 0
      for (let j = i; j < admissions.length; j++) {
        units += admissions[j]!.units
        const span = admissions[j]!.at - admissions[i]!.at
        const bound = limit + (span * limit) / windowMs + maxUnits
        if (units > bound + 1e-9) throw new Error(`${units} units in ${span} ms, bound ${bound}`)
      }
    }
  }), { numRuns: 150 })
  t.pass('within the bound on every span')
})

t.test('a cold key stays exact: one store hit per decision; a hot key takes K = maxUnits at most', async (t) => {
  const { clock, backend, op } = leased(new FixedWindow(), 'cold', 1000)
  t.equal(await hitsApart(backend, clock, op, 10, 700), 10)
  t.equal(backend.hits, 10, 'seen less than twice per ttlMs: every hit goes to the store with cost 1')
  const hot = { ...op, key: 'hot' }
  backend.hits = 0
  t.equal(await hitsApart(backend, clock, hot, 100, 1), 100)
  t.ok(backend.hits <= 25, `100 hot hits took ${backend.hits} store hits`)
  await backend.leasesForTest().idle()
  const [stored] = await backend.store.evaluate([{ ...hot, lease: undefined, cost: 0 }], 'check')
  // A refill joins a lease once half of it is spent: at most half a take plus a take is held.
  t.ok(1000 - stored!.remaining - 100 <= 7, `parked: ${1000 - stored!.remaining - 100} <= 1.5 × maxUnits`)
  t.ok(1000 - stored!.remaining >= 100)
})

t.test('a burst on a hot key waits one take, not one per K units: a window take covers the hits waiting for it', async (t) => {
  const { clock, backend, op } = leased(new FixedWindow(), 'hot', 1000)
  await hitsApart(backend, clock, op, 20, 1)
  const leases = backend.leasesForTest()
  await leases.idle()
  const hitsBefore = backend.hits
  // 60 hits at one instant: the lease answers what it holds, the rest wait for one take.
  const burst = await Promise.all(Array.from({ length: 60 }, async () => await backend.evaluate([op], 'hit')))
  t.ok(burst.every(([d]) => d!.allowed), 'all 60 admitted')
  const takes = backend.hits - hitsBefore
  t.ok(takes <= 6, `60 hits took ${takes} store hits (one per K = 5 units would be about 12)`)
  await leases.idle()
  const [stored] = await backend.store.evaluate([{ ...op, lease: undefined, cost: 0 }], 'check')
  const charged = 1000 - stored!.remaining
  t.equal(charged - leases.unitsOf('hot'), 80, 'the store charged what was admitted plus what is held here')
  t.ok(leases.unitsOf('hot') <= 7, `held after the burst: ${leases.unitsOf('hot')} <= 1.5 × maxUnits (the waiters spent their units)`)
})

t.test('FixedWindow with leases, concurrent bursts (property): never over the limit in a window, the store holds exactly what was admitted', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 3, max: 150 }),
    fc.array(fc.record({ size: fc.integer({ min: 1, max: 60 }), cost: fc.integer({ min: 1, max: 3 }), advance: fc.integer({ min: 0, max: 700 }) }), { minLength: 1, maxLength: 8 }),
    async (limit, bursts) => {
      const { clock, backend, op } = leased(new FixedWindow(), 'k', limit)
      const windowMs = 1000
      const windowed = { ...op, windowMs }
      const admitted = new Map<number, number>()
      for (const burst of bursts) {
        const window = Math.floor(clock.now() / windowMs)
        const answers = await Promise.all(Array.from({ length: burst.size }, async () => await backend.evaluate([{ ...windowed, cost: burst.cost }], 'hit')))
        const units = answers.filter(([d]) => d!.allowed).length * burst.cost
        admitted.set(window, (admitted.get(window) ?? 0) + units)
        if (admitted.get(window)! > limit) return false
        clock.advance(burst.advance)
      }
      await backend.leasesForTest().giveBackAll()
      const [stored] = await backend.store.evaluate([{ ...windowed, lease: undefined, cost: 0 }], 'check')
      return limit - stored!.remaining === (admitted.get(Math.floor(clock.now() / windowMs)) ?? 0)
    }), { numRuns: 150 })
  t.pass('within the limit in every window; after close the store holds what the window admitted')
})

t.test('waiters are covered only within what the store has left, and not on bucket leases', async (t) => {
  const clock = new ManualClock()
  for (const [name, strategy, limit] of [['FixedWindow', new FixedWindow(), 30], ['TokenBucket', new TokenBucket(), 1000]] as const) {
    const { backend, op } = leased(strategy, 'k', limit, clock)
    await hitsApart(backend, clock, op, 10, 1)
    await backend.leasesForTest().idle()
    const burst = await Promise.all(Array.from({ length: 40 }, async () => (await backend.evaluate([op], 'hit'))[0]!.allowed))
    const admitted = 10 + burst.filter(Boolean).length
    await backend.leasesForTest().giveBackAll()
    const [stored] = await backend.store.evaluate([{ ...op, lease: undefined, cost: 0 }], 'check')
    if (name === 'FixedWindow') {
      t.equal(admitted, 30, 'FixedWindow: exactly the limit admitted, never more')
      t.equal(stored!.remaining, 0, 'FixedWindow: the store charged exactly what was admitted')
    } else {
      t.equal(admitted, 50, 'TokenBucket: every hit admitted')
      t.ok(backend.hits >= 40 / 5, `TokenBucket: ${backend.hits} store hits, at most K = 5 units each`)
    }
  }
})

t.test('near the limit K shrinks, and a refused take is asked again at the cost alone', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock)
  const strategy = new FixedWindow()
  const lease = policy(strategy, clock, { maxUnits: 10, maxShare: 1 })
  const op: EvaluateOp = { strategy, key: 'k', limit: 12, windowMs: 3_600_000, cost: 1, lease }
  let allowed = 0
  for (let i = 0; i < 20; i++) if ((await backend.evaluate([op], 'hit'))[0]!.allowed) allowed++
  t.equal(allowed, 12, 'a single process admits the whole limit')
  // Another process took what is left: a take larger than the cost is refused, the plain hit too.
  await backend.store.reset()
  await backend.store.evaluate([{ strategy, key: 'k', limit: 12, windowMs: 3_600_000, cost: 11 }], 'hit')
  clock.advance(1)
  const before = backend.hits
  const [last] = await backend.evaluate([op], 'hit')
  t.ok(last!.allowed, 'the last unit is admitted')
  t.ok(backend.hits - before <= 2)
})

t.test('several limits stay all-or-nothing: units a lease answered go back when another limit rejects', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock)
  const strategy = new FixedWindow()
  const lease = policy(strategy, clock, { maxUnits: 5, maxShare: 1 })
  const leased: EvaluateOp = { strategy, key: 'a', limit: 100, windowMs: 3_600_000, cost: 1, lease }
  const leases = backend.leasesForTest()
  // What the store charged to 'a' less the units parked here: what was admitted on 'a'.
  const admittedOnA = async (): Promise<number> => {
    await leases.idle()
    const [stored] = await backend.store.evaluate([{ ...leased, lease: undefined, cost: 0 }], 'check')
    return 100 - stored!.remaining - leases.unitsOf('a')
  }
  for (let i = 0; i < 3; i++) await backend.evaluate([leased], 'hit')
  await leases.idle()
  const held = leases.unitsOf('a')
  t.ok(held > 0, `units held: ${held}`)
  t.equal(await admittedOnA(), 3)
  const strict: EvaluateOp = { strategy, key: 'b', limit: 1, windowMs: 3_600_000, cost: 1 }
  const hitsBefore = backend.hits
  t.ok((await backend.evaluate([leased, strict], 'hit')).every((d) => d.allowed))
  t.equal(await admittedOnA(), 4, 'the leased limit admitted one more')
  t.ok(leases.unitsOf('a') >= held - 1, 'the lease answered the leased limit (or a refill joined it)')
  t.equal(backend.hits - hitsBefore, leases.unitsOf('a') > held - 1 ? 2 : 1, 'the store decided the other limit alone (and the refill, if one was sent)')
  const unitsBefore = leases.unitsOf('a')
  const decisions = await backend.evaluate([leased, strict], 'hit')
  t.notOk(decisions[1]!.allowed)
  t.equal(await admittedOnA(), 4, 'the store rejected the other limit: nothing more was admitted on the leased one')
  t.ok(leases.unitsOf('a') >= unitsBefore, 'the unit went back to the lease')
})

t.test('checks and refunds see the lease; deletes, writes and resets end it; close gives back', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock)
  const strategy = new FixedWindow()
  const lease = policy(strategy, clock, { maxUnits: 5, maxShare: 1 })
  const op: EvaluateOp = { strategy, key: 'k', limit: 50, windowMs: 3_600_000, cost: 1, lease }
  await backend.initialize()
  const charges: Decision[] = []
  for (let i = 0; i < 3; i++) charges.push((await backend.evaluate([op], 'hit'))[0]!)
  const units = backend.leasesForTest().unitsOf('k')
  t.ok(units > 0)
  const calls = backend.calls
  const [check] = await backend.evaluate([op], 'check')
  t.equal(backend.calls, calls, 'a check the lease holds is answered here')
  t.equal(check!.remaining, 50 - 3, 'remaining from the lease view: the store\'s plus the units held here')
  const [stat] = await backend.evaluate([{ ...op, cost: 0 }], 'check')
  t.equal(stat!.remaining, 50 - 3, 'a stat asks the store and adds the units held here')
  await backend.evaluate([{ ...op, chargedAt: charges[2]!.decidedAt }], 'refund')
  t.equal(backend.leasesForTest().unitsOf('k'), units + 1, 'a refund of a charge made under the lease goes back to it')
  await backend.delete('k')
  t.equal(backend.leasesForTest().unitsOf('k'), 0, 'delete ends the lease')
  await backend.evaluate([op], 'hit')
  await backend.evaluate([op], 'hit')
  await backend.reset()
  t.equal(backend.leasesForTest().unitsOf('k'), 0, 'reset ends the lease')
  await backend.evaluate([op], 'hit')
  await backend.evaluate([op], 'hit')
  t.ok(backend.leasesForTest().unitsOf('k') > 0)
  await backend.close()
  const [stored] = await backend.store.evaluate([{ ...op, lease: undefined, cost: 0 }], 'check')
  t.equal(stored!.remaining, 48, 'close gave the unused units back: the store holds the 2 admitted')
})

t.test('a lease ends with its window and with ttlMs; TokenBucket units lapse', async (t) => {
  const clock = new ManualClock(1_700_000_000_000 - (1_700_000_000_000 % 10_000) + 9_000)
  const backend = new CountingBackend(clock)
  const strategy = new FixedWindow()
  const lease = policy(strategy, clock, { maxUnits: 5, maxShare: 1, ttlMs: 5000 })
  const op: EvaluateOp = { strategy, key: 'k', limit: 50, windowMs: 10_000, cost: 1, lease }
  await backend.evaluate([op], 'hit')
  await backend.evaluate([op], 'hit')
  t.ok(backend.leasesForTest().unitsOf('k') > 0)
  clock.advance(1000)
  t.equal(backend.leasesForTest().unitsOf('k'), 0, 'the window ended: so did the lease')
  const [fresh] = await backend.evaluate([op], 'hit')
  t.equal(fresh!.remaining, 49, 'the new window holds only this hit')

  const bucket = new TokenBucket()
  const tb = policy(bucket, clock, { maxUnits: 5, maxShare: 1, ttlMs: 100 })
  const top: EvaluateOp = { strategy: bucket, key: 'b', limit: 50, windowMs: 3_600_000, cost: 1, lease: tb }
  await backend.evaluate([top], 'hit')
  await backend.evaluate([top], 'hit')
  const held = backend.leasesForTest().unitsOf('b')
  t.ok(held > 0)
  clock.advance(100)
  t.equal(backend.leasesForTest().unitsOf('b'), 0)
  await backend.evaluate([top], 'hit')
  const [stored] = await backend.store.evaluate([{ strategy: bucket, key: 'b', limit: 50, windowMs: 3_600_000, cost: 0 }], 'check')
  t.ok(stored!.remaining <= 50 - 3 - held + 1, 'the unused tokens were not given back')
})

t.test('the block cache beside leases: a blocked key is answered without a round trip', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock, { blockCache: { clock } })
  const strategy = new FixedWindow()
  const lease = policy(strategy, clock, { maxUnits: 5, maxShare: 1 })
  const op: EvaluateOp = { strategy, key: 'k', limit: 20, windowMs: 3_600_000, cost: 1, lease }
  let allowed = 0
  for (let i = 0; i < 25; i++) if ((await backend.evaluate([op], 'hit'))[0]!.allowed) allowed++
  t.equal(allowed, 20)
  const before = backend.calls
  for (let i = 0; i < 100; i++) t.notOk((await backend.evaluate([op], 'hit'))[0]!.allowed)
  t.ok(backend.calls - before <= 1, `${backend.calls - before} store calls for 100 rejected hits`)
})

t.test('registration: strategies that cannot lease, conflicting options and bad values are refused', async (t) => {
  for (const strategy of [new SlidingWindowCounter(), new SlidingWindowLog(), new GCRA(), new LeakyBucket(), new LeakyBucketWithQueue(), new TokenBucketWithDebt(), new Concurrency(), new CalendarQuota({ period: 'month' })]) {
    const app = Fastify()
    await app.register(traffik)
    t.throws(() => app.throttle.create({ uid: 'x', rate: '10/s', strategy, lease: true }), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, strategy.name)
    await app.close()
  }
  const app = Fastify()
  await app.register(traffik)
  t.throws(() => app.throttle.create({ uid: 'e', rate: '10/s', lease: true, escalation: { blocks: [1000] } }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  t.throws(() => app.throttle.create({ uid: 'p', rate: '10/s', lease: true, priority: { of: () => 'a', shares: { a: 1 } } }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  t.throws(() => app.throttle.create({ uid: 'a', rate: '10/s', lease: true, adaptive: true }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  for (const lease of [{ maxUnits: 0 }, { maxShare: 0 }, { maxShare: 2 }, { ttlMs: 0 }, { maxKeys: 1.5 }, { clock: {} }, { other: 1 }, 'yes', null]) {
    t.throws(() => app.throttle.create({ uid: 'v', rate: '10/s', lease: lease as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, JSON.stringify(lease))
  }
  const throttle = app.throttle.create({ uid: 'ok', rate: '10/s', strategy: new TokenBucket(), lease: { maxUnits: 3 } })
  t.throws(() => { throttle.updateStrategy(new GCRA()) }, { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'a runtime switch to a strategy that cannot lease')
  t.equal(throttle.strategy.name, 'token-bucket')
  t.ok(app.throttle.create({ uid: 'off', rate: '10/s', strategy: new GCRA(), lease: false }))
  await app.close()
})

t.test('through the plugin: headers report the lease view; InMemoryBackend ignores leases', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock, { persistent: true })
  const app = Fastify()
  await app.register(traffik, { backend, global: { rate: '30/hour', identifier: () => 'one', lease: { clock, maxUnits: 4, maxShare: 1 } } })
  app.get('/', async () => ({ ok: true }))
  const remaining: string[] = []
  let ok = 0
  for (let i = 0; i < 35; i++) {
    const reply = await app.inject('/')
    if (reply.statusCode === 200) ok++
    remaining.push(String(reply.headers['x-ratelimit-remaining']))
    clock.advance(1)
  }
  t.equal(ok, 30)
  t.same(remaining.slice(0, 5), ['29', '28', '27', '26', '25'], 'remaining counts down from the lease view')
  t.ok(backend.hits < 35, `${backend.hits} store hits`)
  await app.close()

  const memory = Fastify()
  await memory.register(traffik, { global: { rate: '3/hour', identifier: () => 'one', lease: true } })
  memory.get('/', async () => ({ ok: true }))
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await memory.inject('/')).statusCode)
  t.same(statuses, [200, 200, 200, 429, 429])
  await memory.close()
})

// The table is reached the way the guard reaches it (a protected member).
declare module '../../lib/backends/throttle-backend.js' {
  interface ThrottleBackend {
    leasesForTest(): import('../../lib/backends/lease-table.js').LeaseTable
  }
}
;(ThrottleBackend.prototype as unknown as { leasesForTest: () => unknown }).leasesForTest = function (this: { leaseTable: unknown }) {
  return this.leaseTable
}

t.test('through the plugin: two limits on a route stay all-or-nothing; a reservation refund and close give the units back', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock, { persistent: true })
  const app = Fastify()
  await app.register(traffik, { backend })
  const lease = { clock, maxUnits: 5, maxShare: 1 }
  app.get('/', { config: { rateLimit: [{ uid: 'wide', rate: '100/hour', identifier: () => 'one', lease }, { uid: 'strict', rate: '2/hour', identifier: () => 'one' }] } }, async () => ({ ok: true }))
  await app.ready()
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) {
    statuses.push((await app.inject('/')).statusCode)
    clock.advance(1)
  }
  t.same(statuses, [200, 200, 429, 429, 429, 429])
  const wide = { strategy: app.throttle.get('wide')!.strategy, key: 'wide:{one}', limit: 100, windowMs: 3_600_000, cost: 0 }
  const [stored] = await backend.store.evaluate([wide], 'check')
  const parked = backend.leasesForTest().unitsOf('wide:{one}')
  t.equal(100 - stored!.remaining, 2 + parked, 'the wide limit holds the two admissions and the units parked here, nothing for the refused requests')

  const throttle = app.throttle.create({ uid: 'quota', rate: '50/hour', identifier: () => 'one', lease })
  const request = { ip: '127.0.0.1', headers: {} } as never
  for (let i = 0; i < 3; i++) await throttle.hit(request)
  const leases = backend.leasesForTest()
  await leases.idle()
  const before = leases.unitsOf('quota:{one}')
  const reservation = await throttle.reserve(request)
  await reservation.refund()
  await leases.idle()
  t.ok(leases.unitsOf('quota:{one}') >= before, 'the reservation\'s unit went back to the lease')
  t.equal((await throttle.stat(request)).remaining, 47, 'stat: the store\'s remaining plus the units held here')

  await app.close()
  const [afterClose] = await backend.store.evaluate([wide], 'check')
  t.equal(100 - afterClose!.remaining, 2, 'close gave the parked units back')
  const [quota] = await backend.store.evaluate([{ ...wide, strategy: throttle.strategy, key: 'quota:{one}', limit: 50 }], 'check')
  t.equal(50 - quota!.remaining, 3)
})
