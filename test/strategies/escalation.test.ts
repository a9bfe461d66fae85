/**
 * Escalation (an offence record beside a wrapped strategy's state):
 * - Lua ≡ JS: random policies and timelines run through `step`/`refund` and through the Lua twin
 *   inside a real Redis, storing what a backend stores (a kept rejection included); decisions,
 *   escalation fields, TTLs and decoded states must be identical at every step.
 * - Against a reference model: the offences as a list of times per run, blocks looked up in a
 *   table (sequence, or initial × factor^(n−1) capped), the wrapped strategy stepped only when
 *   no block is in force and its state advanced only by admissions.
 * - Option validation: every bad value is a coded error naming its path.
 */
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Decision } from '../../types/decision.js'
import type { Strategy, StrategyState } from '../../types/strategy.js'
import { Escalation, type EscalationPolicy } from '../../lib/strategies/escalation.js'
import { FixedWindow, GCRA, SlidingWindowLog, TokenBucket, createThrottle } from '../../lib/index.js'
import { sharedRedisUrl } from '../../scripts/support/services.js'
import { timelineArbitrary, type Timeline } from './timeline.js'
import { ABSENT, luaTimelineDriver } from './lua-timeline.js'

const NUM_RUNS = Number(process.env.STRATEGY_PARITY_RUNS ?? 300)

const inners: Array<() => Strategy> = [() => new FixedWindow(), () => new TokenBucket(), () => new SlidingWindowLog(), () => new GCRA()]

const policyArbitrary: fc.Arbitrary<EscalationPolicy> = fc.record({
  blocks: fc.oneof(
    fc.constant(undefined),
    fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 4 }),
    fc.record({ initialMs: fc.integer({ min: 1, max: 2000 }), factor: fc.constantFrom(1, 1.5, 2, 3), maxMs: fc.integer({ min: 2000, max: 20_000 }) })
  ),
  periodMs: fc.oneof(fc.integer({ min: 1, max: 30_000 }), fc.constant('block' as const)),
  ban: fc.option(fc.record({ after: fc.integer({ min: 1, max: 4 }), durationMs: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }) }), { nil: undefined }),
  continueExceeding: fc.boolean(),
  offendWhileBlocked: fc.boolean()
}).filter((p) => p.blocks !== undefined || p.ban !== undefined || p.continueExceeding === true)
  .map((p) => JSON.parse(JSON.stringify(p)) as EscalationPolicy)

const WIDTH = 9

function escalationNumbers (d: Decision): [number, number] {
  if (d.escalation === undefined) return [-1, 0]
  return [d.escalation.offences, (d.escalation.offence ? 1 : 0) | (d.escalation.banned ? 2 : 0)]
}

function nowsOf (timeline: Timeline): number[] {
  let now = timeline.start
  return timeline.steps.map((s) => (now += s.gap))
}

function runJs (strategy: Strategy, timeline: Timeline): Array<{ state: StrategyState | null, values: number[] }> {
  let raw: string | undefined
  let expires = Infinity
  const nows = nowsOf(timeline)
  return timeline.steps.map(({ cost, mode }, i) => {
    const now = nows[i]!
    if (raw !== undefined && now >= expires) raw = undefined
    const state = raw === undefined ? undefined : strategy.decode(raw)
    const result = mode === 'refund'
      ? strategy.refund!(state, now, timeline.limit, timeline.windowMs, cost, now)
      : strategy.step(state, now, timeline.limit, timeline.windowMs, cost)
    const d = result.decision
    if ((mode === 'hit' && (d.allowed || result.keep === true)) || mode === 'refund') {
      raw = result.state === null ? undefined : strategy.encode(result.state)
      expires = now + result.ttlMs
    }
    return { state: result.state, values: [result.ttlMs, d.allowed ? 1 : 0, d.remaining, d.resetMs, d.retryAfterMs, d.delayMs ?? 0, ...escalationNumbers(d)] }
  })
}

const redis = new Redis(await sharedRedisUrl())
t.teardown(async () => { await redis.quit() })

t.test('Lua ≡ JS on random policies and timelines (hit, check, refund; clocks stepping back)', async (t) => {
  let steps = 0
  const timelines = timelineArbitrary({ modes: ['hit', 'hit', 'hit', 'check', 'refund'], backwards: true, maxSteps: 30 })
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: inners.length - 1 }), policyArbitrary, timelines, async (which, policy, timeline) => {
    const strategy = new Escalation(inners[which]!(), policy)
    const nows = nowsOf(timeline)
    const args: Array<string | number> = [timeline.steps.length, '0', '', 0]
    timeline.steps.forEach((s, i) => { args.push(nows[i]!, timeline.limit, timeline.windowMs, s.cost, s.mode, nows[i]!) })
    // The driver starts with no state: expires = 0 is never reached before a write sets it.
    args[3] = Number.MAX_SAFE_INTEGER
    const lua = await redis.eval(luaTimelineDriver(strategy.lua, [{ index: 9, absent: -1 }, { index: 10, absent: 0 }]), 0, ...args) as string[]
    const js = runJs(strategy, timeline)
    steps += js.length
    for (let i = 0; i < js.length; i++) {
      const row = lua.slice(i * WIDTH, i * WIDTH + WIDTH)
      const luaState = row[0] === ABSENT ? null : strategy.decode(row[0]!)
      const luaValues = row.slice(1).map(Number)
      const expected = js[i]!
      const same = JSON.stringify(luaState ?? null) === JSON.stringify(expected.state === null ? null : [...expected.state]) &&
        luaValues.every((v, j) => v === expected.values[j])
      if (!same) throw new Error(`step ${i} differs: JS ${JSON.stringify(expected)} Lua ${JSON.stringify(row)} (policy ${JSON.stringify(policy)}, timeline ${JSON.stringify(timeline)})`)
    }
  }), { numRuns: NUM_RUNS })
  t.pass(`${NUM_RUNS} timelines, ${steps} steps: identical decisions, offence records, TTLs and states`)
})

/** The reference: offences kept as a list of times per run, block lengths from a table. */
class Model {
  runStart = 0
  offences: number[] = []
  blockedUntil = 0
  banned = false
  inner: StrategyState | undefined
  constructor (readonly policy: EscalationPolicy, readonly strategy: Strategy) {}

  blockLength (n: number): number {
    const blocks = this.policy.blocks
    if (Array.isArray(blocks)) return blocks[Math.min(n, blocks.length) - 1]!
    if (blocks === undefined) return 0
    const { initialMs, factor = 2, maxMs = 86_400_000 } = blocks as { initialMs: number, factor?: number, maxMs?: number }
    return Math.min(Math.floor(initialMs * factor ** (n - 1)), maxMs)
  }

  /** The offence at `now`: recorded, then the block it earns (the ban's, when longer, at the ban tier). */
  offend (now: number, windowMs: number): number {
    if (this.offences.length === 0) this.runStart = now
    this.offences.push(now)
    const n = this.offences.length
    const ban = this.policy.ban
    let until = now + this.blockLength(n)
    if (ban !== undefined && n >= ban.after) {
      this.banned = true
      const durationMs = ban.durationMs ?? (this.policy.periodMs === 'block' ? 1 : this.policy.periodMs ?? 3_600_000)
      until = Math.max(until, now + durationMs)
    }
    if (until === now) until = 0
    if (this.policy.continueExceeding === true) until = Math.max(until, now + windowMs)
    return until
  }

  hit (now: number, limit: number, windowMs: number, cost: number): { allowed: boolean, retryAfterMs: number, offences?: number, offence?: boolean, banned?: boolean } {
    const period = this.policy.periodMs ?? 3_600_000
    // 'block': the offences are forgotten with the block that ends (below).
    if (period !== 'block' && this.offences.length > 0 && now >= this.runStart + period) this.offences = []
    if (this.blockedUntil > now) {
      if (this.policy.offendWhileBlocked === true) {
        this.blockedUntil = Math.max(this.blockedUntil, this.offend(now, windowMs))
        return { allowed: false, retryAfterMs: this.blockedUntil - now, offences: this.offences.length, offence: true, banned: this.banned }
      }
      if (this.policy.continueExceeding === true) this.blockedUntil = Math.max(this.blockedUntil, now + windowMs)
      return { allowed: false, retryAfterMs: this.blockedUntil - now, offences: this.offences.length, offence: false, banned: this.banned }
    }
    this.banned = false
    if (period === 'block') this.offences = []
    const result = this.strategy.step(this.inner, now, limit, windowMs, cost)
    if (result.decision.allowed) {
      this.inner = result.state ?? undefined
      return { allowed: true, retryAfterMs: 0 }
    }
    if (result.decision.retryAfterMs < 0) return { allowed: false, retryAfterMs: -1 }
    const until = this.offend(now, windowMs)
    this.blockedUntil = until
    return { allowed: false, retryAfterMs: Math.max(1, result.decision.retryAfterMs, until - now), offences: this.offences.length, offence: true, banned: this.banned }
  }
}

t.test('every hit matches the reference model (offences, blocks, bans, continueExceeding)', async (t) => {
  let steps = 0
  // Time only moves forward here and TTLs are honoured by keeping the state as long as it says.
  const timelines = timelineArbitrary({ modes: ['hit'], maxSteps: 40 })
  fc.assert(fc.property(fc.integer({ min: 0, max: inners.length - 1 }), policyArbitrary, timelines, (which, policy, timeline) => {
    const strategy = new Escalation(inners[which]!(), policy)
    const model = new Model(policy, inners[which]!())
    let state: StrategyState | undefined
    let expires = Infinity
    for (const [i, now] of nowsOf(timeline).entries()) {
      const cost = timeline.steps[i]!.cost
      if (now >= expires) state = undefined
      const result = strategy.step(state, now, timeline.limit, timeline.windowMs, cost)
      if (result.decision.allowed || result.keep === true) {
        state = result.state ?? undefined
        expires = now + result.ttlMs
      }
      const d = result.decision
      const actual = { allowed: d.allowed, retryAfterMs: d.retryAfterMs, ...d.escalation }
      const expected = model.hit(now, timeline.limit, timeline.windowMs, cost)
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        throw new Error(`step ${i}: got ${JSON.stringify(actual)}, model ${JSON.stringify(expected)} (policy ${JSON.stringify(policy)}, timeline ${JSON.stringify(timeline)})`)
      }
      steps++
    }
  }), { numRuns: NUM_RUNS * 3 })
  t.pass(`${NUM_RUNS * 3} timelines, ${steps} hits agree with the model`)
})

t.test('rejections keep the offence record but consume nothing of the limit', async (t) => {
  const inner = new FixedWindow()
  const strategy = new Escalation(inner, { blocks: [1000] })
  const now = 60_000
  let state = strategy.step(undefined, now, 1, 60_000, 1).state!
  const rejected = strategy.step(state, now + 1, 1, 60_000, 1)
  t.equal(rejected.keep, true, 'an offence is kept')
  t.same(rejected.state!.slice(4), state.slice(4), 'the wrapped state is unchanged')
  state = rejected.state!
  const blocked = strategy.step(state, now + 2, 1, 60_000, 1)
  t.equal(blocked.keep, false, 'a rejection by a block in force changes nothing')
  t.same(strategy.decode(strategy.encode(state)), state, 'the codec round-trips')
  t.equal(strategy.decode('1,2,3,4|0,0'), undefined, 'banned must be 0 or 1')
  t.equal(strategy.decode('no bar'), undefined)
  t.same(strategy.decode('1,2,3,0|garbage'), [1, 2, 3, 0], 'a bad wrapped state reads as none')
  const refunded = strategy.refund!(state, now + 3, 1, 60_000, 1, now)
  t.same(refunded.state!.slice(0, 4), state.slice(0, 4), 'a refund leaves the record')
  t.equal(new Escalation({ ...inner, name: 'no-refund', refund: undefined, step: inner.step.bind(inner), encode: inner.encode.bind(inner), decode: inner.decode.bind(inner), lua: inner.lua }, { ban: { after: 1 } }).refund, undefined, 'no refund when the wrapped strategy has none')
  const cannot = strategy.step(undefined, now, 1, 60_000, 5)
  t.equal(cannot.decision.retryAfterMs, -1, 'a cost that can never fit is not an offence')
  t.equal(cannot.decision.escalation, undefined)
})

t.test('bad escalation options are coded errors naming the option', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /'escalation'/],
    [{}, /does something/],
    [{ blocks: [-1] }, /escalation\.blocks\[0\]/],
    [{ blocks: 'fast' }, /escalation\.blocks'/],
    [{ blocks: { initialMs: 0 } }, /escalation\.blocks\.initialMs/],
    [{ blocks: { initialMs: 10, factor: 0.5 } }, /escalation\.blocks\.factor/],
    [{ blocks: { initialMs: 10, maxMs: 5 } }, /escalation\.blocks\.maxMs/],
    [{ blocks: [10], periodMs: 0 }, /escalation\.periodMs/],
    [{ ban: { after: 0 } }, /escalation\.ban\.after/],
    [{ ban: 3 }, /escalation\.ban'/],
    [{ ban: { after: 2, statusCode: 200 } }, /escalation\.ban\.statusCode/],
    [{ ban: { after: 2, durations: 5 } }, /escalation\.ban\.durations/],
    [{ continueExceeding: 'yes' }, /escalation\.continueExceeding/],
    [{ blocks: [10], offendWhileBlocked: 'yes' }, /escalation\.offendWhileBlocked/],
    [{ blocks: [10], periodMs: 'forever' }, /escalation\.periodMs/],
    [{ blocks: [10], onBanReach: 'log' }, /escalation\.onBanReach/],
    [{ block: [10] }, /escalation\.block/]
  ]
  for (const [escalation, message] of bad) {
    t.throws(() => createThrottle({ uid: 'x', rate: '1/s', escalation: escalation as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message }, JSON.stringify(escalation))
  }
  const backoff = new Escalation(new FixedWindow(), { blocks: { initialMs: 100 }, periodMs: 'block', offendWhileBlocked: true, ban: { after: 2 } })
  t.same(backoff.policy, { blocks: { initialMs: 100, factor: 2, maxMs: 86_400_000 }, periodMs: 'block', ban: { after: 2, durationMs: 1 }, continueExceeding: false, offendWhileBlocked: true }, 'the policy reads back with its defaults')
  t.same(new Escalation(new FixedWindow(), backoff.policy).policy, backoff.policy, 'and builds the same strategy')
  const throttle = createThrottle({ uid: 'ok', rate: '1/s', escalation: { blocks: { initialMs: 100 } } })
  t.equal(throttle.strategy.name, 'fixed-window', 'the throttle reports the strategy it was given')
})
