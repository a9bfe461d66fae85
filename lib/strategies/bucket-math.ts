/**
 * Exact integer arithmetic shared by the bucket strategies (TokenBucket, TokenBucketWithDebt,
 * LeakyBucket, LeakyBucketWithQueue, GCRA), with its Lua twin.
 *
 * A rate of `limit` per `windowMs` emits one unit of cost every `windowMs / limit` ms, rarely a whole
 * number. Reducing the fraction by g = gcd(limit, windowMs) gives two integers: one millisecond is
 * `perMs = limit / g` ticks and one unit of cost is `perCost = windowMs / g` ticks. Every quantity is
 * then a whole number of ticks, so JS and Lua (both IEEE doubles) compute the same exact values as
 * long as `limit × windowMs` stays below 2^53 (e.g. 1 000 000/day is 8.64e13).
 *
 * The state is the theoretical time at which the bucket is empty again (GCRA's TAT), written as
 * `[ms, ticks]` = ms + ticks / perMs with 0 <= ticks < perMs. The backlog is how far that lies
 * ahead of `now`, in ticks. A request of cost c fits when `backlog + c·perCost <= admit`, where each
 * strategy sets `admit` (its capacity in ticks). Idle time only lowers the backlog to zero, so idle
 * periods of any length restore capacity exactly, without overflow.
 */
import type { Decision } from '../../types/decision.js'
import type { StepResult, StrategyState } from '../../types/strategy.js'
import { decodeState, isIntegral } from './state-codec.js'

export interface BucketScale {
  /** Ticks per millisecond. */
  readonly perMs: number
  /** Ticks per unit of cost. */
  readonly perCost: number
}

/** A strategy's capacity in ticks for a rate. */
export type AdmitOf = (scale: BucketScale, limit: number) => number

/** Euclid on non-negative integers below 2^53 (fewer than 80 rounds); the bound only guards against non-integers. */
export function gcd (a: number, b: number): number {
  for (let round = 0; b !== 0 && round < 100; round++) {
    const r = a % b
    a = b
    b = r
  }
  return a
}

/** The tick scale of a rate; `limit` must be > 0. */
export function bucketScale (limit: number, windowMs: number): BucketScale {
  const g = gcd(limit, windowMs)
  return { perMs: limit / g, perCost: windowMs / g }
}

/**
 * Ticks between `now` and the stored theoretical time (0 when it is past). A stored time ahead of a
 * clock that went backwards still counts in full, so a clock step back never over-admits.
 */
export function backlogOf (state: StrategyState | undefined, now: number, perMs: number): number {
  if (state === undefined) return 0
  let ms = state[0]!
  let ticks = state[1]!
  if (ticks >= perMs) {
    // Written under another rate: carry whole milliseconds.
    const carry = Math.floor(ticks / perMs)
    ms += carry
    ticks -= carry * perMs
  }
  if (ms < now) return 0
  return (ms - now) * perMs + ticks
}

/** The state holding `backlog` ticks at `now`, or null (delete) when the bucket is idle. */
export function bucketState (backlog: number, now: number, perMs: number): number[] | null {
  if (backlog <= 0) return null
  const ms = Math.floor(backlog / perMs)
  return [now + ms, backlog - ms * perMs]
}

/** `[ms, ticks]` with integers and ticks >= 0; undefined otherwise. */
export function decodeBucket (raw: string): StrategyState | undefined {
  const state = decodeState(raw, 2)
  if (state === undefined || !isIntegral(state) || state[1]! < 0) return undefined
  return state
}

function clampRemaining (value: number, limit: number): number {
  return value < 0 ? 0 : value > limit ? limit : value
}

/** The answer for `limit` 0: nothing but cost 0 ever passes. */
function blocked (limit: number, cost: number, queued: boolean): StepResult {
  const decision: Decision = { allowed: cost === 0, limit, remaining: 0, resetMs: 0, retryAfterMs: cost === 0 ? 0 : -1 }
  if (queued) decision.delayMs = 0
  return { state: null, ttlMs: 1, decision }
}

/**
 * One bucket decision. `admit` is the capacity in ticks: a request of cost c passes when
 * `backlog + c·perCost <= admit`. With `queued`, an admitted request waits for the turn of its last
 * unit of cost, `(backlog + (c-1)·perCost) / perMs` ms (`delayMs`).
 */
export function stepBucket (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number,
  admitOf: AdmitOf, queued: boolean): StepResult {
  if (limit <= 0) return blocked(limit, cost, queued)
  const scale = bucketScale(limit, windowMs)
  const { perMs, perCost } = scale
  const admit = admitOf(scale, limit)
  const backlog = backlogOf(state, now, perMs)
  const need = backlog + cost * perCost
  if (need <= admit) {
    const result = bucketResult(need, now, scale, admit, limit, true, 0)
    if (queued) result.decision.delayMs = cost > 0 && need > perCost ? Math.ceil((need - perCost) / perMs) : 0
    return result
  }
  // The backlog drains perMs ticks per ms; an empty bucket is the best it gets.
  const result = bucketResult(backlog, now, scale, admit, limit, false, cost * perCost > admit ? -1 : Math.ceil((need - admit) / perMs))
  if (queued) result.decision.delayMs = 0
  return result
}

/** The step result of a bucket left holding `backlog` ticks. */
function bucketResult (backlog: number, now: number, scale: BucketScale, admit: number, limit: number, allowed: boolean, retryAfterMs: number): StepResult {
  const resetMs = Math.ceil(backlog / scale.perMs)
  const decision: Decision = {
    allowed,
    limit,
    remaining: clampRemaining(Math.floor((admit - backlog) / scale.perCost), limit),
    resetMs,
    retryAfterMs
  }
  return { state: bucketState(backlog, now, scale.perMs), ttlMs: Math.max(1, resetMs), decision }
}

/**
 * The ticks a charge of `cost` made at `chargedAt` still holds at `now`. The bucket drains at a
 * fixed rate whatever was charged, and counting that drain against this charge first is the one
 * attribution that can never give back capacity the bucket has already regained: after
 * `cost·perCost` ticks of drain the charge holds nothing. A charge stamped after `now` (a clock
 * that went backwards) still holds all it took, never more.
 */
function heldTicks (cost: number, perCost: number, perMs: number, now: number, chargedAt: number): number {
  const taken = cost * perCost
  if (chargedAt >= now) return taken
  // Compared before subtracting: the drain of a very old charge may be far beyond 2^53 ticks.
  const drained = (now - chargedAt) * perMs
  return drained >= taken ? 0 : taken - drained
}

/**
 * Gives back what a charge of `cost` made at `chargedAt` still holds (see heldTicks): the
 * theoretical time moves back by those ticks, never before `now` (never above a full bucket).
 */
export function refundBucket (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number,
  chargedAt: number, admitOf: AdmitOf, queued: boolean): StepResult {
  if (limit <= 0) return blocked(limit, 0, queued)
  const scale = bucketScale(limit, windowMs)
  const { perMs, perCost } = scale
  const admit = admitOf(scale, limit)
  const backlog = Math.max(0, backlogOf(state, now, perMs) - heldTicks(cost, perCost, perMs, now, chargedAt))
  const result = bucketResult(backlog, now, scale, admit, limit, true, 0)
  if (queued) result.decision.delayMs = 0
  return result
}

/**
 * The Lua twin of this file. `bucket_step(raw, now, limit, window, cost, refund, charged_at, admit_of, queued)`
 * returns what the strategy's Lua function returns, plus `delay_ms` as a seventh value.
 * Needs LUA_DECODE before it.
 */
export const LUA_BUCKET = `
local function gcd(a, b)
  local round = 0
  while b ~= 0 and round < 100 do
    a, b = b, a % b
    round = round + 1
  end
  return a
end
local function clamp_remaining(v, limit)
  if v < 0 then return 0 end
  if v > limit then return limit end
  return v
end
local function bucket_raw(backlog, now, per_ms)
  if backlog <= 0 then return false end
  local ms = math.floor(backlog / per_ms)
  return fmt(now + ms) .. ',' .. fmt(backlog - ms * per_ms)
end
local function held_ticks(cost, per_cost, per_ms, now, charged_at)
  local taken = cost * per_cost
  if charged_at >= now then return taken end
  local drained = (now - charged_at) * per_ms
  if drained >= taken then return 0 end
  return taken - drained
end
local function bucket_step(raw, now, limit, window, cost, refund, charged_at, admit_of, queued)
  if limit <= 0 then
    if refund == 1 or cost == 0 then return false, 1, 1, 0, 0, 0, 0 end
    return false, 1, 0, 0, 0, -1, 0
  end
  local g = gcd(limit, window)
  local per_ms, per_cost = limit / g, window / g
  local admit = admit_of(per_ms, per_cost, limit)
  local backlog = 0
  local s = decode_state(raw, 2)
  if s ~= nil and is_integral(s) and s[2] >= 0 then
    local ms, ticks = s[1], s[2]
    if ticks >= per_ms then
      local carry = math.floor(ticks / per_ms)
      ms = ms + carry
      ticks = ticks - carry * per_ms
    end
    if ms >= now then backlog = (ms - now) * per_ms + ticks end
  end
  if refund == 1 then
    backlog = math.max(0, backlog - held_ticks(cost, per_cost, per_ms, now, charged_at or now))
    local reset = math.ceil(backlog / per_ms)
    return bucket_raw(backlog, now, per_ms), math.max(1, reset), 1,
      clamp_remaining(math.floor((admit - backlog) / per_cost), limit), reset, 0, 0
  end
  local need = backlog + cost * per_cost
  if need <= admit then
    local reset = math.ceil(need / per_ms)
    local delay = 0
    if queued and cost > 0 and need > per_cost then delay = math.ceil((need - per_cost) / per_ms) end
    return bucket_raw(need, now, per_ms), math.max(1, reset), 1,
      clamp_remaining(math.floor((admit - need) / per_cost), limit), reset, 0, delay
  end
  local reset = math.ceil(backlog / per_ms)
  local retry = math.ceil((need - admit) / per_ms)
  if cost * per_cost > admit then retry = -1 end
  return bucket_raw(backlog, now, per_ms), math.max(1, reset), 0,
    clamp_remaining(math.floor((admit - backlog) / per_cost), limit), reset, retry, 0
end
`
