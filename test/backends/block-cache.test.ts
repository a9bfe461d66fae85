/**
 * The block cache (the `blockCache` backend option, lib/backends/block-cache.ts), in the generic
 * layer: a custom backend (the guard applies it to every guarded backend) in front of an
 * in-memory store, against the same store without a cache on the same manual clock.
 * - Property: on random timelines of hits, refunds, resets and rate changes, every hit is answered
 *   exactly as the store alone answers it (allowed, retry-after), and the store is asked less.
 * - The cache's own rules: bound and eviction of the oldest, what is remembered and what is not,
 *   what forgets a key, validation.
 */
import fc from 'fast-check'
import t from 'tap'
import {
  FixedWindow, GCRA, InMemoryBackend, LeakyBucket, ManualClock, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
  type Decision
} from '../../lib/index.js'
import type { EvaluateOp } from '../../lib/backend.js'
import { CountingBackend } from '../helpers/counting-backend.js'
import { BlockCache } from '../../lib/backends/block-cache.js'
import type { Strategy } from '../../types/strategy.js'

const STRATEGIES: Array<[string, () => Strategy]> = [
  ['FixedWindow', () => new FixedWindow()],
  ['SlidingWindowCounter', () => new SlidingWindowCounter()],
  ['SlidingWindowLog', () => new SlidingWindowLog()],
  ['TokenBucket', () => new TokenBucket()],
  ['GCRA', () => new GCRA({ burst: 2 })],
  ['LeakyBucket', () => new LeakyBucket()]
]

type Step =
  | { kind: 'wait', ms: number }
  | { kind: 'hit', client: number, cost: number }
  | { kind: 'refund' }
  | { kind: 'delete', client: number }
  | { kind: 'rate', limit: number }
  | { kind: 'check', client: number }

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 1500 })) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('hit' as const), client: fc.integer({ min: 0, max: 2 }), cost: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refund' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), client: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rate' as const), limit: fc.integer({ min: 2, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('check' as const), client: fc.integer({ min: 0, max: 2 }) }) }
)

for (const [name, make] of STRATEGIES) {
  t.test(`${name}: hits through the block cache are answered as the store alone answers them`, async (t) => {
    let hits = 0
    let storeCalls = 0
    await fc.assert(fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 80 }), fc.integer({ min: 1, max: 3 }), async (steps, maxKeys) => {
      const clock = new ManualClock()
      const cached = new CountingBackend(clock, { blockCache: { maxKeys, clock } })
      const reference = new InMemoryBackend({ clock })
      const strategy = make()
      let limit = 4
      const windowMs = 1000
      const charges: EvaluateOp[] = []
      const opOf = (client: number, cost: number): EvaluateOp => ({ strategy, key: `k:{${client}}`, limit, windowMs, cost })
      for (const step of steps) {
        if (step.kind === 'wait') clock.advance(step.ms)
        else if (step.kind === 'rate') limit = step.limit
        else if (step.kind === 'delete') {
          await cached.delete(opOf(step.client, 1).key)
          await reference.delete(opOf(step.client, 1).key)
        } else if (step.kind === 'refund') {
          const charge = charges.pop()
          if (charge === undefined) continue
          await cached.evaluate([charge], 'refund')
          await reference.evaluate([charge], 'refund')
        } else {
          const op = opOf(step.client, step.kind === 'hit' ? step.cost : 1)
          const mode = step.kind === 'hit' ? 'hit' : 'check'
          const [got] = await cached.evaluate([op], mode)
          const [want] = await reference.evaluate([op], mode)
          if (got!.allowed !== want!.allowed || got!.retryAfterMs !== want!.retryAfterMs) {
            throw new Error(`${mode} at ${clock.now()}: cached ${JSON.stringify(got)} vs store ${JSON.stringify(want)}`)
          }
          if (mode === 'hit') {
            hits++
            if (got!.allowed) charges.push({ ...op, chargedAt: want!.decidedAt })
          }
        }
      }
      storeCalls += cached.calls
      hits += steps.filter((s) => s.kind === 'refund' || s.kind === 'check').length
    }), { numRuns: 150 })
    t.ok(storeCalls < hits, `the store was asked ${storeCalls} times for ${hits} calls`)
  })
}

t.test('a flood from one blocked client costs the store one call per wait', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock, { blockCache: { clock } })
  const op: EvaluateOp = { strategy: new FixedWindow(), key: 'flood', limit: 3, windowMs: 60_000, cost: 1 }
  for (let i = 0; i < 3; i++) t.ok((await backend.evaluate([op], 'hit'))[0]!.allowed)
  const before = backend.calls
  let rejected = 0
  for (let i = 0; i < 1000; i++) {
    const [decision] = await backend.evaluate([op], 'hit')
    if (!decision!.allowed) rejected++
    clock.advance(1)
  }
  t.equal(rejected, 1000)
  t.equal(backend.calls - before, 1, 'one call: the rejection that was remembered')
  const [late] = await backend.evaluate([op], 'hit')
  const windowEnd = clock.now() - (clock.now() % 60_000) + 60_000
  t.equal(late!.retryAfterMs, windowEnd - clock.now(), 'the wait counts down exactly')
  clock.set(windowEnd)
  t.ok((await backend.evaluate([op], 'hit'))[0]!.allowed, 'allowed again once the wait is over')
  t.equal(backend.calls - before, 2)
})

t.test('what forgets a key: refunds, deletes, writes, clearPrefix, reset; checks are never answered', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock, { blockCache: { clock } })
  const strategy = new FixedWindow()
  const op = (key: string): EvaluateOp => ({ strategy, key, limit: 1, windowMs: 60_000, cost: 1 })
  const block = async (key: string): Promise<void> => {
    await backend.evaluate([op(key)], 'hit')
    await backend.evaluate([op(key)], 'hit')
  }
  const answeredLocally = async (key: string): Promise<boolean> => {
    const before = backend.calls
    await backend.evaluate([op(key)], 'hit')
    return backend.calls === before
  }
  await block('a:{1}')
  t.ok(await answeredLocally('a:{1}'))
  const checks = backend.calls
  await backend.evaluate([op('a:{1}')], 'check')
  t.equal(backend.calls, checks + 1, 'a check asks the store')
  await backend.evaluate([{ ...op('a:{1}'), chargedAt: clock.now() }], 'refund')
  t.ok((await backend.evaluate([op('a:{1}')], 'hit'))[0]!.allowed, 'a refund forgets the key at once: the freed unit is admitted')
  for (const forget of [
    async () => { await backend.delete('a:{1}') },
    async () => { await backend.set('a:{1}', '0,0') },
    async () => { await backend.multiSet([['a:{1}', '0,0']]) },
    async () => { await backend.clearPrefix('a:') },
    async () => { await backend.reset() }
  ]) {
    await block('a:{1}')
    t.ok(await answeredLocally('a:{1}'))
    await forget()
    t.notOk(await answeredLocally('a:{1}'), String(forget))
  }
  await backend.reset()
  await block('a:{1}')
  await block('b:{1}')
  await backend.clearPrefix('a:')
  t.ok(await answeredLocally('b:{1}'), 'clearPrefix forgets only its prefix')
  t.notOk(await answeredLocally('x:{1}'), 'a key never blocked asks the store')
})

t.test('the same request only: another cost, rate, window or strategy asks the store', async (t) => {
  const clock = new ManualClock()
  const backend = new CountingBackend(clock, { blockCache: { clock } })
  const strategy = new FixedWindow()
  const base: EvaluateOp = { strategy, key: 'k', limit: 2, windowMs: 60_000, cost: 2 }
  await backend.evaluate([base], 'hit')
  t.notOk((await backend.evaluate([base], 'hit'))[0]!.allowed)
  for (const other of [{ cost: 1 }, { cost: 3 }, { limit: 3 }, { windowMs: 30_000 }, { strategy: new FixedWindow() }]) {
    const before = backend.calls
    await backend.evaluate([{ ...base, ...other }], 'hit')
    t.equal(backend.calls, before + 1, JSON.stringify(Object.keys(other)))
  }
  const before = backend.calls
  const [a, b] = await backend.evaluate([base, { ...base, key: 'other' }], 'hit')
  t.equal(backend.calls, before + 1, 'several limits are answered here only when every one is blocked')
  t.notOk(a!.allowed)
  t.ok(b!.allowed)
})

t.test('BlockCache: bounded, oldest evicted; never remembers a wait of -1, an escalation or an admission', async (t) => {
  let now = 1000
  const cache = new BlockCache(2, () => now)
  const strategy = new FixedWindow()
  const op = (key: string, cost = 1): EvaluateOp => ({ strategy, key, limit: 1, windowMs: 1000, cost })
  const rejected = (retryAfterMs: number, extra: Partial<Decision> = {}): Decision => ({ allowed: false, limit: 1, remaining: 0, resetMs: 500, retryAfterMs, ...extra })
  cache.learn([op('a'), op('b')], [rejected(100), rejected(100)])
  cache.learn([op('c')], [rejected(100)])
  t.equal(cache.size, 2)
  t.equal(cache.answer([op('a')], 'hit'), undefined, 'the oldest was evicted')
  t.same(cache.answer([op('b')], 'hit'), [{ allowed: false, limit: 1, remaining: 0, resetMs: 500, retryAfterMs: 100 }])
  now += 40
  t.same(cache.answer([op('c')], 'hit'), [{ allowed: false, limit: 1, remaining: 0, resetMs: 460, retryAfterMs: 60 }])
  t.equal(cache.answer([op('c')], 'check'), undefined)
  now += 60
  t.equal(cache.answer([op('c')], 'hit'), undefined, 'the wait is over')
  t.equal(cache.size, 1, 'an expired entry is dropped when looked at')
  cache.clear()
  cache.learn([op('n'), op('e'), op('z')], [rejected(-1), rejected(100, { escalation: { offences: 1, offence: true, banned: false } }), rejected(100)])
  cache.learn([op('free', 0)], [rejected(100)])
  t.equal(cache.size, 1, 'only the plain rejection is remembered')
  cache.learn([op('z')], [{ allowed: true, limit: 1, remaining: 0, resetMs: 500, retryAfterMs: 0 }])
  t.equal(cache.size, 0, 'an admission forgets the key')
})

t.test('blockCache option: validated, and refused by InMemoryBackend', async (t) => {
  const invalid = { code: 'TRAFFIK_ERR_INVALID_OPTION' }
  const clock = new ManualClock()
  t.throws(() => new InMemoryBackend({ blockCache: true }), { ...invalid, message: /blockCache/ })
  t.doesNotThrow(() => new InMemoryBackend({ blockCache: false }))
  t.throws(() => new CountingBackend(clock, { blockCache: 'yes' as never }), invalid)
  t.throws(() => new CountingBackend(clock, { blockCache: { maxKeys: 0 } }), { ...invalid, message: /maxKeys/ })
  t.throws(() => new CountingBackend(clock, { blockCache: { clock: {} as never } }), { ...invalid, message: /clock/ })
  t.throws(() => new CountingBackend(clock, { blockCache: { maxkeys: 5 } as never }), invalid)
  t.doesNotThrow(() => new CountingBackend(clock, { blockCache: true }))
})
