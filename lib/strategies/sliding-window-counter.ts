/**
 * SlidingWindowCounter: the weighted two-window estimate. Windows are aligned to the epoch like
 * FixedWindow's; at `elapsed` ms into the current window the estimate of the last windowMs is
 * `previous × (windowMs − elapsed) / windowMs + current`, and a request of cost c passes when
 * the estimate plus c is at most the limit. Only accepted cost is counted. Everything is compared
 * multiplied by windowMs, so the test is exact integer arithmetic.
 *
 * State: `[windowStart, current, previous]`: the start of the window `current` counts, and the
 * count of the window before it.
 * Specification: docs/strategies/sliding-window-counter.md.
 */
import type { Decision } from '../../types/decision.js'
import type { Strategy, StepResult, StrategyState, WindowCounterPlan } from '../../types/strategy.js'
import { LUA_DECODE, decodeState, encodeState, isIntegral } from './state-codec.js'
import { readOptions } from './strategy-options.js'

/** Start of the aligned window holding `now`. */
function windowStartOf (now: number, windowMs: number): number {
  return now - (now - Math.floor(now / windowMs) * windowMs)
}

/**
 * The decision for counts `current` (before this request) and `previous` of the window starting at
 * `start`. Shared by `step` and the counter plan so both always agree.
 */
function decide (start: number, current: number, previous: number, now: number, limit: number, windowMs: number, cost: number): Decision {
  // A window ahead of a clock that went backwards counts as just begun: previous weighs in full.
  const elapsed = Math.max(0, now - start)
  const budget = limit * windowMs - previous * (windowMs - elapsed)
  const allowed = (current + cost) * windowMs <= budget
  const counted = allowed ? current + cost : current
  const remaining = Math.min(limit, Math.max(0, Math.floor((budget - counted * windowMs) / windowMs)))
  const resetMs = counted > 0 ? start + 2 * windowMs - now : previous > 0 ? start + windowMs - now : 0
  return { allowed, limit, remaining, resetMs, retryAfterMs: allowed ? 0 : retryAfter(start, current, previous, now, limit, windowMs, cost) }
}

/** The exact wait until a rejected request of cost `cost` fits, assuming no other traffic. */
function retryAfter (start: number, current: number, previous: number, now: number, limit: number, windowMs: number, cost: number): number {
  if (cost > limit) return -1
  // Later in this window the previous window weighs less: previous·(windowMs − t) <= room·windowMs.
  const room = limit - current - cost
  if (room >= 0 && previous > 0) {
    const t = windowMs - Math.floor(room * windowMs / previous)
    if (t < windowMs) return start + t - now
  }
  // In the next window `current` becomes the previous one and the new window is empty.
  let t = 0
  if (current > 0) t = Math.max(0, windowMs - Math.floor((limit - cost) * windowMs / current))
  return start + windowMs + t - now
}

export class SlidingWindowCounter implements Strategy {
  readonly name = 'sliding-window-counter'
  readonly stateIndependentOfLimit = true

  constructor (options?: Record<string, never>) {
    readOptions('SlidingWindowCounter', options, [])
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    const [start, current, previous] = this.#counts(state, now, windowMs)
    const decision = decide(start, current, previous, now, limit, windowMs, cost)
    const counted = decision.allowed ? current + cost : current
    return this.#result(start, counted, previous, decision)
  }

  /**
   * Gives `cost` back to the counter of the window the charge was made in: the current one, or the
   * previous one (which still weighs in the estimate). A charge from any older window holds nothing.
   */
  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt = now): StepResult {
    const [start, counted, before] = this.#counts(state, now, windowMs)
    const charged = windowStartOf(chargedAt, windowMs)
    const current = charged === start ? Math.max(0, counted - cost) : counted
    const previous = charged === start - windowMs ? Math.max(0, before - cost) : before
    // A refund always answers allowed, even when the estimate is still over (a rate lowered meanwhile).
    const decision = { ...decide(start, current, previous, now, limit, windowMs, 0), allowed: true, retryAfterMs: 0 }
    return this.#result(start, current, previous, decision)
  }

  /** `[start, current, previous]` as seen at `now`. */
  #counts (state: StrategyState | undefined, now: number, windowMs: number): [number, number, number] {
    const start = windowStartOf(now, windowMs)
    if (state === undefined) return [start, 0, 0]
    const stored = state[0]!
    // Current, or ahead of a clock that went backwards: still counts, forgetting it would over-admit.
    if (stored >= start) return [stored, state[1]!, state[2]!]
    if (stored === start - windowMs) return [start, 0, state[1]!]
    return [start, 0, 0]
  }

  #result (start: number, current: number, previous: number, decision: Decision): StepResult {
    const ttlMs = Math.max(1, decision.resetMs)
    if (current === 0 && previous === 0) return { state: null, ttlMs, decision }
    return { state: [start, current, previous], ttlMs, decision }
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  decode (raw: string): StrategyState | undefined {
    const state = decodeState(raw, 3)
    if (state === undefined || !isIntegral(state) || state[1]! < 0 || state[2]! < 0) return undefined
    return state
  }

  /**
   * Counter fast path (Memcached): window-id counters for the current and the previous window.
   * The current counter lives until the end of the next window, where it is the previous one.
   */
  readonly counter: WindowCounterPlan = {
    windows: [0, -1],
    ttlMs (now: number, windowMs: number): number {
      return windowStartOf(now, windowMs) + 2 * windowMs - now
    },
    decide (counts: readonly number[], now: number, limit: number, windowMs: number, cost: number): Decision {
      return decide(windowStartOf(now, windowMs), counts[0]! - cost, counts[1] ?? 0, now, limit, windowMs, cost)
    }
  }

  readonly lua = `${LUA_DECODE}
local function retry_after(start, current, previous, now, limit, window, cost)
  if cost > limit then return -1 end
  local room = limit - current - cost
  if room >= 0 and previous > 0 then
    local t = window - math.floor(room * window / previous)
    if t < window then return start + t - now end
  end
  local t = 0
  if current > 0 then t = math.max(0, window - math.floor((limit - cost) * window / current)) end
  return start + window + t - now
end
local function decide(start, current, previous, now, limit, window, cost)
  local elapsed = math.max(0, now - start)
  local budget = limit * window - previous * (window - elapsed)
  local allowed = (current + cost) * window <= budget
  local counted = current
  if allowed then counted = current + cost end
  local remaining = math.min(limit, math.max(0, math.floor((budget - counted * window) / window)))
  local reset = 0
  if counted > 0 then reset = start + 2 * window - now elseif previous > 0 then reset = start + window - now end
  local retry = 0
  if not allowed then retry = retry_after(start, current, previous, now, limit, window, cost) end
  local raw = false
  if counted > 0 or previous > 0 then raw = fmt(start) .. ',' .. fmt(counted) .. ',' .. fmt(previous) end
  local ok = 0
  if allowed then ok = 1 end
  return raw, math.max(1, reset), ok, remaining, reset, retry, 0
end
local function window_start(t, window)
  return t - (t - math.floor(t / window) * window)
end
return function(raw, now, limit, window, cost, refund, charged_at)
  local start = window_start(now, window)
  local current, previous = 0, 0
  local s = decode_state(raw, 3)
  if s ~= nil and is_integral(s) and s[2] >= 0 and s[3] >= 0 then
    if s[1] >= start then start, current, previous = s[1], s[2], s[3]
    elseif s[1] == start - window then previous = s[2] end
  end
  if refund == 1 then
    local charged = window_start(charged_at or now, window)
    if charged == start then current = math.max(0, current - cost)
    elseif charged == start - window then previous = math.max(0, previous - cost) end
    local value, ttl, _, remaining, reset = decide(start, current, previous, now, limit, window, 0)
    return value, ttl, 1, remaining, reset, 0, 0
  end
  return decide(start, current, previous, now, limit, window, cost)
end
`
}
