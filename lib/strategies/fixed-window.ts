/**
 * FixedWindow: at most `limit` units of cost in each window `[k·windowMs, (k+1)·windowMs)`,
 * windows aligned to the Unix epoch so every process agrees on them.
 *
 * State: `[windowStart, used]`. Rejected requests leave the state untouched, so a burst never
 * pushes anyone's wait past the window end, and Retry-After is exactly the time to that end.
 * Specification: docs/strategies/fixed-window.md.
 */
import type { Decision } from '../../types/decision.js'
import type { Strategy, StepResult, StrategyState, WindowCounterPlan } from '../../types/strategy.js'
import { untouchedDecision } from '../decision.js'
import { decodeState, encodeState, isIntegral, LUA_DECODE } from './state-codec.js'
import { readOptions } from './strategy-options.js'

export class FixedWindow implements Strategy {
  readonly name = 'fixed-window'
  readonly stateIndependentOfLimit = true

  constructor (options?: Record<string, never>) {
    readOptions('FixedWindow', options, [])
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    const current = now - (now % windowMs)
    let start = current
    let used = 0
    // A stored window that is current, or ahead of a clock that went backwards, still counts:
    // forgetting it would over-admit.
    if (state !== undefined && state[0]! >= current) {
      start = state[0]!
      used = state[1]!
    }
    const resetMs = Math.max(1, start + windowMs - now)
    if (used + cost <= limit) {
      const next = used + cost
      return {
        state: [start, next],
        ttlMs: resetMs,
        decision: { allowed: true, limit, remaining: limit - next, resetMs, retryAfterMs: 0 }
      }
    }
    return {
      state: [start, used],
      ttlMs: resetMs,
      decision: {
        allowed: false,
        limit,
        remaining: Math.max(0, limit - used),
        resetMs,
        // The next window starts empty, so waiting until it begins is enough, unless no window can ever hold this cost.
        retryAfterMs: cost > limit ? -1 : resetMs
      }
    }
  }

  /**
   * Gives `cost` back to the window the charge was made in, if that window is still the stored
   * one (the current window, or one ahead of a clock that went backwards). A charge whose window
   * has ended holds nothing any more: the state is left as it is.
   */
  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt = now): StepResult {
    const current = now - (now % windowMs)
    if (state === undefined || state[0]! < current) {
      // Nothing stored counts any more: nothing left to give back.
      return { state: null, ttlMs: 1, decision: untouchedDecision(limit) }
    }
    const start = state[0]!
    const charged = chargedAt - (chargedAt % windowMs)
    const used = charged === start ? Math.max(0, state[1]! - cost) : state[1]!
    const resetMs = Math.max(1, start + windowMs - now)
    return {
      state: [start, used],
      ttlMs: resetMs,
      decision: { allowed: true, limit, remaining: Math.max(0, limit - used), resetMs, retryAfterMs: 0 }
    }
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  /** `[windowStart, used]` as integers with `used >= 0`; undefined otherwise. */
  decode (raw: string): StrategyState | undefined {
    const state = decodeState(raw, 2)
    if (state === undefined || !isIntegral(state) || state[1]! < 0) return undefined
    return state
  }

  readonly counter: WindowCounterPlan = {
    windows: [0],
    ttlMs (now: number, windowMs: number): number {
      return windowMs - (now % windowMs)
    },
    decide (counts: readonly number[], now: number, limit: number, windowMs: number, cost: number): Decision {
      const count = counts[0]!
      const resetMs = windowMs - (now % windowMs)
      if (count <= limit) return { allowed: true, limit, remaining: limit - count, resetMs, retryAfterMs: 0 }
      return {
        allowed: false,
        limit,
        remaining: Math.max(0, limit - (count - cost)),
        resetMs,
        retryAfterMs: cost > limit ? -1 : resetMs
      }
    }
  }

  readonly lua = `${LUA_DECODE}
return function(raw, now, limit, window, cost, refund, charged_at)
  local current = now - (now % window)
  local s = decode_state(raw, 2)
  if s ~= nil and (not is_integral(s) or s[2] < 0) then s = nil end
  if refund == 1 then
    if s == nil or s[1] < current then return false, 1, 1, limit, 0, 0 end
    charged_at = charged_at or now
    local used = s[2]
    if charged_at - (charged_at % window) == s[1] then used = math.max(0, used - cost) end
    local reset = math.max(1, s[1] + window - now)
    return fmt(s[1]) .. ',' .. fmt(used), reset, 1, math.max(0, limit - used), reset, 0
  end
  local start, used = current, 0
  if s ~= nil and s[1] >= current then start, used = s[1], s[2] end
  local reset = math.max(1, start + window - now)
  if used + cost <= limit then
    local nxt = used + cost
    return fmt(start) .. ',' .. fmt(nxt), reset, 1, limit - nxt, reset, 0
  end
  local retry = reset
  if cost > limit then retry = -1 end
  return fmt(start) .. ',' .. fmt(used), reset, 0, math.max(0, limit - used), reset, retry
end
`
}
