/**
 * CalendarQuota: at most `limit` units of cost per calendar period — a day, week, month or year
 * in an IANA time zone, or a billing cycle that restarts on a client's own day — optionally with
 * the unused part of one period carried into the next, up to a cap.
 *
 * Calendar periods have no fixed length (months run 28–31 days, a day across a daylight-saving
 * change 23 or 25 hours), so the host computes them: `periods.bounds(now, anchor)` gives five
 * boundaries `b0 < … < b4` around the host's `now`, the limit core passes them with the op, and
 * the step (here, and its Lua twin on Redis) picks the period that holds the backend's own `now`
 * among `[b1, b2)`, `[b2, b3)`, `[b3, b4)`: a backend clock a little off the host's still lands in
 * the right period, and the period before it is known for rollover.
 *
 * State: `[periodStart, used, carried]`, where `carried` is what the period received from the one
 * before. The counter starts afresh when the period changes. With rollover, a client whose stored
 * record is of the period just before carries `min(cap, limit − max(0, used − carried))` (what it
 * left of that period's own limit; carried quota is spent first and never carried twice); a client
 * with no record of that period carries nothing. A decision's `limit` is the rate's limit, like
 * every strategy's, and `remaining` (what the period's allowance `limit + carried` has left) is
 * clamped to it.
 * Specification: docs/strategies/calendar-quota.md.
 */
import type { PeriodPlan, Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { untouchedDecision } from '../decision.js'
import { invalidOption } from '../errors.js'
import {
  CALENDAR_PERIODS, defaultAnchor, periodBounds, readAnchor, zoneFormatter,
  type AnchorCode, type CalendarPeriod
} from './calendar-periods.js'
import { decodeState, encodeState, isIntegral, LUA_DECODE } from './state-codec.js'
import { readOptions } from './strategy-options.js'

export type { CalendarPeriod } from './calendar-periods.js'

/** Where a cycle starts: a day number (1–31 of the month, or ISO weekday 1–7 of the week), or a date. */
export type CalendarAnchor = number | string | Date

export interface CalendarQuotaOptions {
  /**
   * The period the quota is counted in.
   * @default 'month'
   */
  period?: CalendarPeriod
  /**
   * The IANA time zone periods are counted in, e.g. `'Europe/Berlin'`; a zone the running Node
   * does not know fails at construction.
   * @default 'UTC'
   */
  zone?: string
  /**
   * Where each cycle starts (at local midnight of that day): for `'month'` a day of the month
   * (1–31; 31 means the last day in shorter months), for `'week'` an ISO weekday (1 = Monday …
   * 7 = Sunday), or for `'month'`, `'week'` and `'year'` a date (`'2026-01-17'` or a `Date`) whose
   * day of the month, weekday, or month and day the cycle restarts on. A function of the request
   * (sync or async) gives each client its own cycle, e.g. its billing day. Not for `'day'`.
   * @default the 1st of the month, Monday, 1 January
   */
  anchor?: CalendarAnchor | ((request: any) => CalendarAnchor | PromiseLike<CalendarAnchor>)
  /**
   * Carry what a period left unused into the next one, at most `cap` units.
   * @default no rollover
   */
  rollover?: { cap: number }
}

export class CalendarQuota implements Strategy {
  readonly name = 'calendar-quota'
  readonly period: CalendarPeriod
  readonly zone: string
  /** The most a period carries into the next; 0 without rollover. */
  readonly rolloverCap: number
  /** The `anchor` option when it is a value (a `Date` as its ISO string); undefined when absent or a function. */
  readonly fixedAnchor: number | string | undefined
  readonly lua: string
  readonly periods: PeriodPlan

  readonly #formatter: Intl.DateTimeFormat
  readonly #anchor: AnchorCode
  /** The last bounds computed per anchor, reused while `now` stays in their middle period. */
  readonly #cache = new Map<AnchorCode, number[]>()

  constructor (options?: CalendarQuotaOptions) {
    const read = readOptions('CalendarQuota', options, ['period', 'zone', 'anchor', 'rollover'])
    const period = read.period ?? 'month'
    if (!CALENDAR_PERIODS.includes(period as CalendarPeriod)) invalidOption('period', `one of ${CALENDAR_PERIODS.map((p) => `'${p}'`).join(', ')}`, period)
    this.period = period as CalendarPeriod
    this.zone = (read.zone ?? 'UTC') as string
    this.#formatter = zoneFormatter(this.zone)
    const anchor = read.anchor
    if (anchor !== undefined && this.period === 'day') invalidOption('anchor', "nothing for a 'day' period (days start at local midnight)", anchor)
    this.#anchor = anchor === undefined || typeof anchor === 'function' ? defaultAnchor(this.period) : readAnchor(anchor, this.period, this.#formatter)
    this.fixedAnchor = anchor instanceof Date ? anchor.toISOString() : typeof anchor === 'number' || typeof anchor === 'string' ? anchor : undefined
    this.rolloverCap = readRollover(read.rollover)
    this.lua = calendarLua(this.rolloverCap)
    const strategy = this
    const anchorOf = typeof anchor === 'function' ? anchor as (request: unknown) => unknown : undefined
    this.periods = Object.freeze({
      ...(anchorOf === undefined ? {} : { anchorOf }),
      bounds (now: number, anchorInput?: unknown): number[] {
        return strategy.#bounds(now, anchorInput)
      }
    })
  }

  #bounds (now: number, anchorInput: unknown): number[] {
    const anchor = anchorInput === undefined ? this.#anchor : readAnchor(anchorInput, this.period, this.#formatter)
    const cached = this.#cache.get(anchor)
    if (cached !== undefined && cached[2]! <= now && now < cached[3]!) return cached
    const bounds = periodBounds(this.#formatter, this.period, anchor, now)
    if (this.#cache.size < 1000 || cached !== undefined) this.#cache.set(anchor, bounds)
    return bounds
  }

  step (state: StrategyState | undefined, now: number, limit: number, _windowMs: number, cost: number, bounds?: readonly number[]): StepResult {
    const b = bounds ?? this.#bounds(now, undefined)
    const at = pick(b, now, state)
    const start = b[at]!
    const end = b[at + 1]!
    let used = 0
    let carried = 0
    const recorded = state !== undefined && state[0] === start
    if (recorded) {
      used = state[1]!
      carried = state[2]!
    } else if (state !== undefined && state[0] === b[at - 1]) {
      carried = carriedFrom(state, limit, this.rolloverCap)
    }
    const allowance = limit + carried
    const resetMs = Math.max(1, end - now)
    const ttlMs = this.#ttl(start, end, now)
    if (used + cost <= allowance) {
      const next = used + cost
      return {
        state: [start, next, carried],
        ttlMs,
        decision: { allowed: true, limit, remaining: Math.min(limit, allowance - next), resetMs, retryAfterMs: 0 }
      }
    }
    // The next period holds `limit` plus what this one carries, were nothing more spent now (a
    // period without a record, which a rejection does not make, carries nothing); a cost beyond
    // that is not met by waiting.
    const next = limit + (recorded ? carriedFrom([start, used, carried], limit, this.rolloverCap) : 0)
    return {
      state: [start, used, carried],
      ttlMs,
      decision: { allowed: false, limit, remaining: clamp(allowance - used, limit), resetMs, retryAfterMs: cost > next ? -1 : resetMs }
    }
  }

  /**
   * Gives `cost` back to the period the charge was made in, if that period is the stored one and
   * still current. A charge of an ended period holds nothing any more (what that period left is
   * settled), and its record is kept as it is for rollover.
   */
  refund (state: StrategyState | undefined, now: number, limit: number, _windowMs: number, cost: number, chargedAt = now, bounds?: readonly number[]): StepResult {
    const b = bounds ?? this.#bounds(now, undefined)
    const at = pick(b, now, state)
    const start = b[at]!
    const end = b[at + 1]!
    if (state === undefined || state[0]! < b[at - 1]!) return { state: null, ttlMs: 1, decision: untouchedDecision(limit) }
    if (state[0] !== start) {
      // The period before: kept for rollover until the current period ends.
      return { state: [state[0]!, state[1]!, state[2]!], ttlMs: Math.max(1, end - now), decision: untouchedDecision(limit) }
    }
    const carried = state[2]!
    const used = chargeStart(b, chargedAt) === start ? Math.max(0, state[1]! - cost) : state[1]!
    const allowance = limit + carried
    return {
      state: [start, used, carried],
      ttlMs: this.#ttl(start, end, now),
      decision: { allowed: true, limit, remaining: clamp(allowance - used, limit), resetMs: Math.max(1, end - now), retryAfterMs: 0 }
    }
  }

  /** A record lives to its period's end; with rollover, through the next period as well (the next period is at most twice as long). */
  #ttl (start: number, end: number, now: number): number {
    const toEnd = Math.max(1, end - now)
    return this.rolloverCap > 0 ? toEnd + 2 * (end - start) : toEnd
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  /** `[periodStart, used, carried]` as integers with `used, carried >= 0`; undefined otherwise. */
  decode (raw: string): StrategyState | undefined {
    const state = decodeState(raw, 3)
    if (state === undefined || !isIntegral(state) || state[1]! < 0 || state[2]! < 0) return undefined
    return state
  }
}

function readRollover (value: unknown): number {
  if (value === undefined) return 0
  if (value === null || typeof value !== 'object' || Array.isArray(value)) invalidOption('rollover', 'an object { cap }', value)
  const { cap } = value as { cap?: unknown }
  if (Object.keys(value).some((key) => key !== 'cap')) invalidOption('rollover', 'an object { cap } with no other keys', value)
  if (typeof cap !== 'number' || !Number.isSafeInteger(cap) || cap < 1) invalidOption('rollover.cap', 'an integer >= 1', cap)
  return cap
}

/**
 * Index `i` (1–3) of the period `[b[i], b[i+1])` the step decides in: the one holding `now`
 * (clamped to the outer two), or a later one the stored record already belongs to (a backend
 * clock a little behind another's: the counting already moved on and must not move back).
 */
function pick (b: readonly number[], now: number, state: StrategyState | undefined): number {
  let at = now < b[2]! ? 1 : now >= b[3]! ? 3 : 2
  if (state !== undefined) for (let j = at + 1; j <= 3; j++) if (b[j] === state[0]) at = j
  return at
}

/** Start of the period (among the bounds) that holds `chargedAt`; -1 outside them. */
function chargeStart (b: readonly number[], chargedAt: number): number {
  for (let j = 0; j < 4; j++) if (b[j]! <= chargedAt && chargedAt < b[j + 1]!) return b[j]!
  return -1
}

/** `value` within [0, limit]. */
function clamp (value: number, limit: number): number {
  return Math.max(0, Math.min(limit, value))
}

/** What a period with record `[start, used, carried]` carries into the next under `limit`, at most `cap`. */
function carriedFrom (state: StrategyState, limit: number, cap: number): number {
  if (cap <= 0) return 0
  return Math.min(cap, Math.max(0, limit - Math.max(0, state[1]! - state[2]!)))
}

/**
 * The Lua twin. `bounds` is the op's list of five boundaries (a Lua table), which the evaluation
 * script reads from the op's arguments.
 */
function calendarLua (cap: number): string {
  return `${LUA_DECODE}
local CAP = ${cap}
local function carried_from(used, carried, limit)
  if CAP <= 0 then return 0 end
  return math.min(CAP, math.max(0, limit - math.max(0, used - carried)))
end
return function(raw, now, limit, window, cost, refund, charged_at, b)
  local s = decode_state(raw, 3)
  if s ~= nil and (not is_integral(s) or s[2] < 0 or s[3] < 0) then s = nil end
  local at = 3
  if now < b[3] then at = 2 elseif now >= b[4] then at = 4 end
  if s ~= nil then for j = at + 1, 4 do if b[j] == s[1] then at = j end end end
  local start, finish, before = b[at], b[at + 1], b[at - 1]
  local reset = math.max(1, finish - now)
  local ttl = reset
  if CAP > 0 then ttl = reset + 2 * (finish - start) end
  if refund == 1 then
    if s == nil or s[1] < before then return false, 1, 1, limit, 0, 0 end
    if s[1] ~= start then return fmt(s[1]) .. ',' .. fmt(s[2]) .. ',' .. fmt(s[3]), reset, 1, limit, 0, 0 end
    charged_at = charged_at or now
    local charged = -1
    for j = 1, 4 do if b[j] <= charged_at and charged_at < b[j + 1] then charged = b[j] break end end
    local used = s[2]
    if charged == start then used = math.max(0, used - cost) end
    local allowance = limit + s[3]
    return fmt(start) .. ',' .. fmt(used) .. ',' .. fmt(s[3]), ttl, 1, math.max(0, math.min(limit, allowance - used)), reset, 0
  end
  local used, carried, recorded = 0, 0, false
  if s ~= nil and s[1] == start then
    recorded = true
    used, carried = s[2], s[3]
  elseif s ~= nil and s[1] == before then
    carried = carried_from(s[2], s[3], limit)
  end
  local allowance = limit + carried
  local value = fmt(start) .. ',' .. fmt(used) .. ',' .. fmt(carried)
  if used + cost <= allowance then
    local nxt = used + cost
    return fmt(start) .. ',' .. fmt(nxt) .. ',' .. fmt(carried), ttl, 1, math.min(limit, allowance - nxt), reset, 0
  end
  local retry = reset
  local next_carried = 0
  if recorded then next_carried = carried_from(used, carried, limit) end
  if cost > limit + next_carried then retry = -1 end
  return value, ttl, 0, math.max(0, math.min(limit, allowance - used)), reset, retry
end
`
}
