/**
 * CalendarQuota's Lua twin ≡ its JS step, in a real Redis: random timelines (time zones with
 * daylight-saving changes, every period kind and anchors, rollover caps, hits, checks and refunds
 * of charges made now, earlier or long ago, the host's bounds off the step's clock by up to an
 * hour, corrupt stored values) run through both; states, TTLs and decisions must be identical at
 * every step. The twin also runs inside the escalation wrapper with the bounds passed through.
 */
import fc from 'fast-check'
import { Redis } from 'ioredis'
import t from 'tap'
import { CalendarQuota, type CalendarQuotaOptions } from '../../lib/index.js'
import { Escalation } from '../../lib/strategies/escalation.js'
import type { Strategy, StrategyState } from '../../types/strategy.js'
import { sharedRedisUrl } from '../../scripts/support/services.js'

const NUM_RUNS = Number(process.env.STRATEGY_PARITY_RUNS ?? 200)
const HOUR = 3_600_000
const DAY = 24 * HOUR
const ABSENT = '<none>'

const redis = new Redis(await sharedRedisUrl())
t.teardown(() => { redis.disconnect() })

/**
 * Runs a timeline in one EVAL. ARGV: n, initial raw ('' for none), then per step: now, limit,
 * cost, mode, chargedAt ('' for none), bounds (comma-separated). The state is stored as the
 * evaluation script stores it (allowed hits and refunds), and dropped when its TTL passes.
 */
function driver (lua: string): string {
  return `local step = (function() ${lua} end)()
local n = tonumber(ARGV[1])
local raw = false
if ARGV[2] ~= '' then raw = ARGV[2] end
local expires = math.huge
local out = {}
local i = 3
for k = 1, n do
  local now, limit, cost, mode = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  local charged_at = nil
  if ARGV[i + 4] ~= '' then charged_at = tonumber(ARGV[i + 4]) end
  local bounds = {}
  for b in string.gmatch(ARGV[i + 5], '[^,]+') do bounds[#bounds + 1] = tonumber(b) end
  i = i + 6
  if raw and now >= expires then raw = false end
  local refund = 0
  if mode == 'refund' then refund = 1 end
  local r = { step(raw, now, limit, 1000, cost, refund, charged_at, bounds) }
  if (mode == 'hit' and r[3] == 1) or mode == 'refund' then
    if r[1] then
      raw = r[1]
      expires = now + r[2]
    else
      raw = false
    end
  end
  if r[1] then out[#out + 1] = r[1] else out[#out + 1] = '${ABSENT}' end
  for j = 2, 6 do out[#out + 1] = string.format('%.17g', r[j] or 0) end
end
return out
`
}

interface Step { now: number, limit: number, cost: number, mode: 'hit' | 'check' | 'refund', chargedAt: number | undefined, bounds: number[] }

function runJs (strategy: Strategy, initial: string | undefined, steps: readonly Step[]): string[] {
  let raw = initial
  let expires = Infinity
  const out: string[] = []
  for (const s of steps) {
    if (raw !== undefined && s.now >= expires) raw = undefined
    const state: StrategyState | undefined = raw === undefined ? undefined : strategy.decode(raw)
    const result = s.mode === 'refund'
      ? strategy.refund!(state, s.now, s.limit, 1000, s.cost, s.chargedAt, s.bounds)
      : strategy.step(state, s.now, s.limit, 1000, s.cost, s.bounds)
    const d = result.decision
    if ((s.mode === 'hit' && d.allowed) || s.mode === 'refund') {
      raw = result.state === null ? undefined : strategy.encode(result.state)
      expires = s.now + result.ttlMs
    }
    out.push(result.state === null ? ABSENT : strategy.encode(result.state), ...[result.ttlMs, d.allowed ? 1 : 0, d.remaining, d.resetMs, d.retryAfterMs].map(String))
  }
  return out
}

const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago']
const options: fc.Arbitrary<CalendarQuotaOptions> = fc.record({
  zone: fc.constantFrom(...ZONES),
  period: fc.constantFrom('day', 'week', 'month', 'year' as const),
  anchor: fc.constantFrom(1, 3, 7, 17, 31, '2024-02-29', '2025-12-31'),
  cap: fc.constantFrom(0, 0, 1, 4, 20)
}).map(({ zone, period, anchor, cap }) => {
  const fitting = period === 'day' ? undefined : period === 'year' && typeof anchor === 'number' ? '2024-06-30' : period === 'week' && typeof anchor === 'number' && anchor > 7 ? 5 : anchor
  return { zone, period, ...(fitting === undefined ? {} : { anchor: fitting }), ...(cap > 0 ? { rollover: { cap } } : {}) }
})
const event = fc.record({
  gap: fc.oneof(fc.integer({ min: 0, max: 600_000 }), fc.integer({ min: 0, max: 2 * DAY }), fc.integer({ min: 0, max: 35 * DAY })),
  cost: fc.integer({ min: 0, max: 6 }),
  limit: fc.constantFrom(0, 3, 5, 5, 5, 9),
  mode: fc.constantFrom('hit', 'hit', 'hit', 'check', 'refund' as const),
  charged: fc.constantFrom('now', 'earlier', 'long-ago', 'absent', 'ahead'),
  skew: fc.integer({ min: -HOUR, max: HOUR })
})
const initial = fc.oneof(fc.constant(undefined), fc.constantFrom('garbage', '1,2', '1,-1,0', '1.5,1,0', '0,3,0', ''))

t.test(`Lua ≡ JS on ${NUM_RUNS} random timelines per wrapper`, async (t) => {
  for (const wrap of [false, true]) {
    let steps = 0
    await fc.assert(fc.asyncProperty(options, fc.integer({ min: Date.parse('2025-01-01'), max: Date.parse('2027-12-31') }), initial, fc.array(event, { minLength: 1, maxLength: 25 }), async (opts, start, init, events) => {
      const quota = new CalendarQuota(opts)
      const strategy: Strategy = wrap ? new Escalation(quota, { blocks: [HOUR, 2 * HOUR], periodMs: DAY }) : quota
      let now = start
      const timeline: Step[] = []
      for (const e of events) {
        now += e.gap
        const chargedAt = e.charged === 'now' ? now : e.charged === 'earlier' ? now - e.gap : e.charged === 'long-ago' ? now - 90 * DAY : e.charged === 'ahead' ? now + HOUR : undefined
        timeline.push({ now, limit: e.limit, cost: e.cost, mode: e.mode, chargedAt, bounds: quota.periods.bounds(now + e.skew) })
      }
      steps += timeline.length
      const js = runJs(strategy, init, timeline)
      const args: Array<string | number> = [timeline.length, init ?? '']
      for (const s of timeline) args.push(s.now, s.limit, s.cost, s.mode, s.chargedAt ?? '', s.bounds.join(','))
      const lua = await redis.eval(driver(strategy.lua), 0, ...args) as string[]
      for (let i = 0; i < js.length; i++) {
        // Stored values are compared decoded (Lua and JS may format a number differently).
        if (i % 6 === 0 && js[i] !== ABSENT && lua[i] !== ABSENT) {
          const a = strategy.decode(js[i]!)
          const b = strategy.decode(lua[i]!)
          if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`step ${Math.floor(i / 6)} state: JS ${js[i]} Lua ${lua[i]}`)
          continue
        }
        if (js[i] !== lua[i]) throw new Error(`step ${Math.floor(i / 6)} value ${i % 6}: JS ${js[i]} Lua ${lua[i]} (${JSON.stringify({ opts, init, timeline })})`)
      }
    }), { numRuns: NUM_RUNS })
    t.pass(`${wrap ? 'inside escalation' : 'alone'}: ${steps} steps identical`)
  }
})
