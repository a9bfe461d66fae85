/**
 * Strategy specs (what ClusterBackend sends its primary): a strategy described, sent as JSON and
 * rebuilt decides every timeline exactly as the original, for every built-in with random options
 * and with a random escalation policy around it; anything else travels by name.
 */
import fc from 'fast-check'
import t from 'tap'
import type { Strategy, StrategySpec, StrategyState } from '../../types/strategy.js'
import { Escalation, type EscalationPolicy } from '../../lib/strategies/escalation.js'
import { describeStrategy, reviveStrategy, strategyCodec } from '../../lib/strategies/strategy-spec.js'
import {
  CalendarQuota, Concurrency, FixedWindow, GCRA, LeakyBucket, LeakyBucketWithQueue, SlidingWindowCounter, SlidingWindowLog, TokenBucket, TokenBucketWithDebt
} from '../../lib/index.js'
import { timelineArbitrary } from './timeline.js'

const NONE = new Map<string, Strategy>()
const optional = (arb: fc.Arbitrary<number>): fc.Arbitrary<number | undefined> => fc.option(arb, { nil: undefined })
const count = fc.integer({ min: 1, max: 20 })

const builtIn: fc.Arbitrary<Strategy> = fc.oneof(
  fc.constant(new FixedWindow()),
  fc.constant(new SlidingWindowCounter()),
  fc.constant(new SlidingWindowLog()),
  fc.constant(new Concurrency()),
  fc.constant(new Concurrency({ maxWaitMs: 500 })),
  fc.constantFrom(
    new CalendarQuota(),
    new CalendarQuota({ period: 'day', zone: 'Europe/Berlin', rollover: { cap: 3 } }),
    new CalendarQuota({ period: 'month', anchor: 31 }),
    new CalendarQuota({ period: 'year', zone: 'America/New_York', anchor: new Date('2024-02-29T12:00:00Z') })
  ),
  optional(count).map((burst) => new TokenBucket(burst === undefined ? {} : { burst })),
  fc.tuple(optional(count), optional(fc.integer({ min: 0, max: 10 }))).map(([burst, maxDebt]) => new TokenBucketWithDebt({ ...(burst === undefined ? {} : { burst }), ...(maxDebt === undefined ? {} : { maxDebt }) })),
  optional(count).map((burst) => new LeakyBucket(burst === undefined ? {} : { burst })),
  optional(fc.integer({ min: 0, max: 5000 })).map((maxDelayMs) => new LeakyBucketWithQueue(maxDelayMs === undefined ? {} : { maxDelayMs })),
  optional(count).map((burst) => new GCRA(burst === undefined ? {} : { burst }))
)

const policy: fc.Arbitrary<EscalationPolicy> = fc.record({
  blocks: fc.oneof(
    fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 4 }),
    fc.record({ initialMs: fc.integer({ min: 1, max: 2000 }), factor: fc.constantFrom(1, 1.5, 2), maxMs: fc.integer({ min: 2000, max: 20_000 }) })
  ),
  periodMs: fc.integer({ min: 1, max: 30_000 }),
  ban: fc.option(fc.record({ after: fc.integer({ min: 1, max: 4 }), durationMs: fc.integer({ min: 1, max: 10_000 }) }), { nil: undefined }),
  continueExceeding: fc.boolean()
}, { requiredKeys: ['blocks'] })

const anyStrategy: fc.Arbitrary<Strategy> = fc.oneof(
  { arbitrary: builtIn, weight: 3 },
  { arbitrary: fc.tuple(builtIn, policy).map(([inner, p]) => new Escalation(inner, p)), weight: 2 }
)

/** Through JSON, as the IPC channel carries it. */
function sent (strategy: Strategy): Strategy {
  return reviveStrategy(JSON.parse(JSON.stringify(describeStrategy(strategy))) as StrategySpec, NONE)
}

t.test('a rebuilt strategy decides every timeline as the original', async (t) => {
  fc.assert(fc.property(anyStrategy, timelineArbitrary({ modes: ['hit', 'check', 'refund'], maxSteps: 30 }), (original, timeline) => {
    const rebuilt = sent(original)
    if (rebuilt.constructor !== original.constructor || rebuilt.name !== original.name || rebuilt.lua !== original.lua) return false
    let a: StrategyState | undefined
    let b: StrategyState | undefined
    let now = timeline.start
    for (const step of timeline.steps) {
      now += step.gap
      const refund = step.mode === 'refund'
      if (refund && original.refund === undefined) continue
      const ra = refund ? original.refund!(a, now, timeline.limit, timeline.windowMs, step.cost) : original.step(a, now, timeline.limit, timeline.windowMs, step.cost)
      const rb = refund ? rebuilt.refund!(b, now, timeline.limit, timeline.windowMs, step.cost) : rebuilt.step(b, now, timeline.limit, timeline.windowMs, step.cost)
      if (JSON.stringify(ra) !== JSON.stringify(rb)) return false
      if (step.mode === 'check') continue
      if (ra.decision.allowed || refund || ra.keep === true) {
        a = ra.state ?? undefined
        b = rb.state ?? undefined
      }
    }
    return true
  }), { numRuns: 300 })
  t.pass('300 random strategies and timelines')
})

t.test('built-ins travel by class and options; escalations with their policy', async (t) => {
  t.same(describeStrategy(new TokenBucketWithDebt({ maxDebt: 3 })), { kind: 'built-in', class: 'TokenBucketWithDebt', options: { maxDebt: 3 } })
  t.same(describeStrategy(new LeakyBucketWithQueue()), { kind: 'built-in', class: 'LeakyBucketWithQueue', options: { maxDelayMs: 1000 } })
  const escalated = describeStrategy(new Escalation(new FixedWindow(), { blocks: [1000] }))
  t.same(escalated, { kind: 'escalation', strategy: { kind: 'built-in', class: 'FixedWindow', options: {} }, policy: { blocks: [1000], periodMs: 3_600_000, continueExceeding: false } })
  t.equal(strategyCodec.describe, describeStrategy)
})

t.test('other strategies travel by name and are rebuilt from the instances the primary knows', async (t) => {
  class Mine extends TokenBucket {}
  const custom: Strategy = { ...new FixedWindow(), name: 'mine', step: new FixedWindow().step, encode: String, decode: () => undefined }
  t.same(describeStrategy(new Mine()), { kind: 'named', name: 'token-bucket' }, 'a subclass is not the built-in')
  t.same(describeStrategy(custom), { kind: 'named', name: 'mine' })
  t.equal(reviveStrategy({ kind: 'named', name: 'mine' }, new Map([['mine', custom]])), custom)
  t.throws(() => reviveStrategy({ kind: 'named', name: 'other' }, NONE), { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /strategy 'other' is not a built-in/ })
  t.throws(() => reviveStrategy({ kind: 'built-in', class: 'Hourglass', options: {} }, NONE), { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /Hourglass/ })
  t.throws(() => reviveStrategy({ kind: 'other' } as never, NONE), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => reviveStrategy(null as never, NONE), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => reviveStrategy({ kind: 'built-in', class: 'TokenBucket', options: { burst: -1 } }, NONE), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'options are checked as at construction')
})
