/**
 * SlidingWindowLog: the exact log of accepted requests. A request of cost c at `now` passes when
 * the costs accepted in the last windowMs — timestamps in (now − windowMs, now] — plus c are at
 * most the limit. Rejected requests are not logged. Exact, at the price of O(entries) state: up to
 * one entry per millisecond with traffic in the last window (requests in the same ms are merged).
 *
 * State: `[t1, c1, t2, c2, …]`, the accepted (timestamp ms, cost) pairs of the last window,
 * oldest first, timestamps strictly increasing.
 * Specification: docs/strategies/sliding-window-log.md.
 */
import type { Decision } from '../../types/decision.js'
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { LUA_DECODE, decodeList, encodeState, isIntegral } from './state-codec.js'
import { readOptions } from './strategy-options.js'

export class SlidingWindowLog implements Strategy {
  readonly name = 'sliding-window-log'
  readonly stateIndependentOfLimit = true

  constructor (options?: Record<string, never>) {
    readOptions('SlidingWindowLog', options, [])
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    const log = live(state, now, windowMs)
    const used = sum(log)
    if (used + cost <= limit) {
      if (cost > 0) append(log, now, cost)
      return result(log, now, limit, windowMs, used + cost, true, 0)
    }
    return result(log, now, limit, windowMs, used, false, cost > limit ? -1 : retryAfter(log, now, windowMs, used + cost - limit))
  }

  /**
   * Takes `cost` off the log entry of the charge: the entry stamped `chargedAt`, while it is still
   * in the window. A charge that has left the log holds nothing (and the entries of other charges
   * are never touched).
   */
  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt = now): StepResult {
    const log = live(state, now, windowMs)
    for (let i = 0; i < log.length; i += 2) {
      if (log[i] !== chargedAt) continue
      const left = log[i + 1]! - cost
      if (left > 0) log[i + 1] = left
      else log.splice(i, 2)
      break
    }
    return result(log, now, limit, windowMs, sum(log), true, 0)
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  decode (raw: string): StrategyState | undefined {
    const state = decodeList(raw)
    if (state === undefined || state.length % 2 !== 0 || !isIntegral(state)) return undefined
    for (let i = 0; i < state.length; i += 2) {
      if (state[i + 1]! < 0 || (i > 0 && state[i]! <= state[i - 2]!)) return undefined
    }
    return state
  }

  readonly lua = `${LUA_DECODE}
local function decode_log(raw)
  local s = decode_list(raw)
  if s == nil or #s % 2 ~= 0 or not is_integral(s) then return nil end
  for i = 1, #s, 2 do
    if s[i + 1] < 0 or (i > 1 and s[i] <= s[i - 2]) then return nil end
  end
  return s
end
local function encode_log(log)
  if #log == 0 then return false end
  local parts = {}
  for i = 1, #log do parts[i] = fmt(log[i]) end
  return table.concat(parts, ',')
end
local function result(log, now, limit, window, used, allowed, retry)
  local reset = 0
  if #log > 0 then reset = log[#log - 1] + window - now end
  local ok = 0
  if allowed then ok = 1 end
  return encode_log(log), math.max(1, reset), ok, math.min(limit, math.max(0, limit - used)), reset, retry, 0
end
return function(raw, now, limit, window, cost, refund, charged_at)
  local log, used = {}, 0
  local s = decode_log(raw)
  if s ~= nil then
    for i = 1, #s, 2 do
      if s[i] + window > now then
        log[#log + 1] = s[i]
        log[#log + 1] = s[i + 1]
        used = used + s[i + 1]
      end
    end
  end
  if refund == 1 then
    charged_at = charged_at or now
    for i = 1, #log, 2 do
      if log[i] == charged_at then
        local take = math.min(log[i + 1], cost)
        used = used - take
        if take == log[i + 1] then
          table.remove(log, i)
          table.remove(log, i)
        else
          log[i + 1] = log[i + 1] - take
        end
        break
      end
    end
    return result(log, now, limit, window, used, true, 0)
  end
  if used + cost <= limit then
    if cost > 0 then
      if #log > 0 and log[#log - 1] >= now then
        log[#log] = log[#log] + cost
      else
        log[#log + 1] = now
        log[#log + 1] = cost
      end
    end
    return result(log, now, limit, window, used + cost, true, 0)
  end
  local retry = -1
  if cost <= limit then
    local need, freed = used + cost - limit, 0
    for i = 1, #log, 2 do
      freed = freed + log[i + 1]
      if freed >= need then
        retry = log[i] + window - now
        break
      end
    end
  end
  return result(log, now, limit, window, used, false, retry)
end
`
}

/** The entries still inside the window (timestamp + windowMs > now), as a fresh mutable list. */
function live (state: StrategyState | undefined, now: number, windowMs: number): number[] {
  const log: number[] = []
  if (state === undefined) return log
  for (let i = 0; i + 1 < state.length; i += 2) {
    if (state[i]! + windowMs > now) log.push(state[i]!, state[i + 1]!)
  }
  return log
}

function sum (log: readonly number[]): number {
  let total = 0
  for (let i = 1; i < log.length; i += 2) total += log[i]!
  return total
}

/**
 * Logs an accepted cost. A clock that went backwards stamps it with the newest timestamp instead,
 * which keeps the log ordered and the entry in the window at least as long as it should be.
 */
function append (log: number[], now: number, cost: number): void {
  if (log.length > 0 && log[log.length - 2]! >= now) log[log.length - 1]! += cost
  else log.push(now, cost)
}

/** When enough of the oldest entries have left the window to free `need` units. */
function retryAfter (log: readonly number[], now: number, windowMs: number, need: number): number {
  let freed = 0
  for (let i = 0; i < log.length; i += 2) {
    freed += log[i + 1]!
    if (freed >= need) return log[i]! + windowMs - now
  }
  return -1 // unreachable while cost <= limit: the whole log frees enough
}

function result (log: number[], now: number, limit: number, windowMs: number, used: number, allowed: boolean, retryAfterMs: number): StepResult {
  const resetMs = log.length === 0 ? 0 : log[log.length - 2]! + windowMs - now
  const decision: Decision = { allowed, limit, remaining: Math.min(limit, Math.max(0, limit - used)), resetMs, retryAfterMs }
  return { state: log.length === 0 ? null : log, ttlMs: Math.max(1, resetMs), decision }
}
