/**
 * Parity: the same random timelines run through each strategy's JS `step`/`refund` and through its
 * Lua twin inside a REAL Redis (EVAL of a small driver that wraps the chunk the way RedisBackend
 * does and passes `now` explicitly). Decisions, TTLs and decoded states must be identical at every
 * step, including refunds, checks, clocks stepping back, rates changing and corrupt stored values.
 * Refunds carry a `chargedAt` in the present, the recent past, an earlier window, long ago, ahead
 * of now, at the time of an earlier step (a log entry that may still be there), or none at all.
 */
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import type { Strategy, StrategyState } from '../../types/strategy.js'
import { sharedRedisUrl } from '../../scripts/support/services.js'
import { subjects } from './models.js'
import { WINDOWS, timelineArbitrary, type Timeline } from './timeline.js'
import { ABSENT, luaTimelineDriver } from './lua-timeline.js'

const NUM_RUNS = Number(process.env.STRATEGY_PARITY_RUNS ?? 500)

interface JsStep { state: StrategyState | null, values: number[] }

/** The time of every step, and the `chargedAt` of every refund (undefined: none given). */
function timesOf (timeline: Timeline): { nows: number[], chargedAts: Array<number | undefined> } {
  const nows: number[] = []
  let now = timeline.start
  for (const step of timeline.steps) {
    now += step.gap
    nows.push(now)
  }
  const chargedAts = timeline.steps.map((step, i): number | undefined => {
    if (step.mode !== 'refund' || step.charged === 'absent') return undefined
    if (step.charged === 'now') return nows[i]!
    if (step.charged === 'earlier') return nows[step.pick % (i + 1)]!
    return nows[i]! - step.offset
  })
  return { nows, chargedAts }
}

/** The same timeline in JS, with the state kept as the encoded string a backend stores. */
function runJs (strategy: Strategy, timeline: Timeline, initialRaw: string | undefined, rates: Array<[number, number]>): JsStep[] {
  let raw = initialRaw
  let expires = timeline.start + 1_000_000_000_000
  const { nows, chargedAts } = timesOf(timeline)
  const out: JsStep[] = []
  for (const [i, { cost, mode }] of timeline.steps.entries()) {
    const now = nows[i]!
    const [limit, windowMs] = rates[i]!
    if (raw !== undefined && now >= expires) raw = undefined
    const state = raw === undefined ? undefined : strategy.decode(raw)
    const result = mode === 'refund'
      ? strategy.refund!(state, now, limit, windowMs, cost, chargedAts[i])
      : strategy.step(state, now, limit, windowMs, cost)
    const d = result.decision
    if ((mode === 'hit' && d.allowed) || mode === 'refund') {
      raw = result.state === null ? undefined : strategy.encode(result.state)
      expires = now + result.ttlMs
    }
    out.push({ state: result.state, values: [result.ttlMs, d.allowed ? 1 : 0, d.remaining, d.resetMs, d.retryAfterMs, d.delayMs ?? 0] })
  }
  return out
}

const CORRUPT = ['', 'abc', '1,,2', ',', '1,2,', '1,2,3,4,5', 'NaN,1', '1e400,1', ' 1,2', '-5,3', '1.5,2', '0x10,1', '1,-1', '5,4,3',
  // The two-integer fast path of the Lua decoder: overflow, signs, leading zeros, trailing text.
  `${'9'.repeat(400)},1`, `1,${'9'.repeat(400)}`, '-0,1', '+1,2', '01,02', '1,2\n', '1, 2', '1.0,2', '1,2e0']

const redisUrl = await sharedRedisUrl()
const redis = new Redis(redisUrl)
t.teardown(async () => { await redis.quit() })

for (const subject of subjects()) {
  const { strategy } = subject
  const script = luaTimelineDriver(strategy.lua)
  t.test(`${subject.label}: JS and Lua twin agree on random timelines`, async (t) => {
    let steps = 0
    const initial = fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 6 },
      { arbitrary: fc.constantFrom(...CORRUPT), weight: 2 }
    )
    const modes: Array<'hit' | 'check' | 'refund'> = strategy.refund === undefined ? ['hit', 'hit', 'check'] : ['hit', 'hit', 'hit', 'check', 'refund', 'refund']
    // Sometimes the rate changes mid-timeline (dynamic rates): states written under one rate are read under another.
    const otherRate = fc.option(fc.record({ limit: fc.integer({ min: 0, max: 30 }), windowMs: fc.constantFrom(...WINDOWS), every: fc.integer({ min: 2, max: 6 }) }), { freq: 3 })
    await fc.assert(fc.asyncProperty(timelineArbitrary({ modes, backwards: true, maxSteps: 30 }), initial, otherRate, async (timeline, initialRaw, other) => {
      const rates = timeline.steps.map((_, i): [number, number] =>
        other !== null && i % other.every === other.every - 1 ? [other.limit, other.windowMs] : [timeline.limit, timeline.windowMs])
      const args: Array<string | number> = [timeline.steps.length, initialRaw === undefined ? '0' : '1', initialRaw ?? '', timeline.start + 1_000_000_000_000]
      const { nows, chargedAts } = timesOf(timeline)
      for (const [i, s] of timeline.steps.entries()) {
        args.push(nows[i]!, rates[i]![0], rates[i]![1], s.cost, s.mode, chargedAts[i] ?? '')
      }
      const lua = await redis.eval(script, 0, ...args) as string[]
      const js = runJs(strategy, timeline, initialRaw, rates)
      steps += js.length
      for (let i = 0; i < js.length; i++) {
        const row = lua.slice(i * 7, i * 7 + 7)
        const luaState = row[0] === ABSENT ? null : strategy.decode(row[0]!)
        const luaValues = row.slice(1).map(Number)
        const expected = js[i]!
        const same = JSON.stringify(luaState ?? null) === JSON.stringify(expected.state === null ? null : [...expected.state]) &&
          luaValues.every((v, j) => v === expected.values[j])
        if (!same) {
          throw new Error(`step ${i} differs: JS ${JSON.stringify(expected)} Lua ${JSON.stringify(row)} (timeline ${JSON.stringify(timeline)}, initial ${JSON.stringify(initialRaw)})`)
        }
      }
    }), { numRuns: NUM_RUNS })
    t.comment(`${subject.label}: ${NUM_RUNS} timelines, ${steps} steps compared`)
    t.pass(`${NUM_RUNS} timelines, ${steps} steps: identical decisions, TTLs and states`)
  })
}
