/**
 * Escalation: a strategy that wraps another and keeps, beside the wrapped strategy's state under
 * the same key, the client's offence record. Because the record is part of the state, every
 * backend reads and updates it in the very operation that decides the request: synchronously in
 * memory, in the one Lua script on Redis, by compare-and-swap on memcached, under the lock of the
 * generic evaluate.
 *
 * A rejection by the wrapped strategy is an offence: it blocks the client for the policy's
 * duration for that offence (a sequence, or a factor with a cap) and, at the ban tier, bans it.
 * While a block is in force every request is rejected without asking the wrapped strategy, and
 * without being a new offence (unless `offendWhileBlocked`: then each one is an offence and
 * restarts the block for the new count). Rejections still consume nothing of the limit itself:
 * only the record changes (the step says `keep`, so backends store it although the hit is rejected).
 *
 * State: `[offences, periodStart, blockedUntil, banned, ...wrapped state]`, stored as
 * `offences,periodStart,blockedUntil,banned|<wrapped encoding>`.
 * Specification: docs/escalation.md.
 */
import type { Decision } from '../../types/decision.js'
import type { StepResult, Strategy, StrategyState } from '../../types/strategy.js'
import { ESCALATION_BANNED, ESCALATION_OFFENCE, escalationOf } from '../decision.js'
import { invalidOption } from '../errors.js'
import { decodeState, isIntegral, LUA_DECODE } from './state-codec.js'

/** Block durations per offence: a growing factor with a cap. */
export interface EscalationFactor {
  /** The first block, in ms (an integer >= 1). */
  initialMs: number
  /**
   * Each further offence multiplies the block by this (a number >= 1).
   * @default 2
   */
  factor?: number
  /**
   * The longest block, in ms.
   * @default 86400000 (one day)
   */
  maxMs?: number
}

/** The numbers of an escalation policy (what the throttle's `escalation` option becomes). */
export interface EscalationPolicy {
  /**
   * How long each offence blocks the client, in ms: a sequence (the n-th offence blocks for the
   * n-th entry, the last one repeating; 0 blocks nothing) or a factor with a cap.
   * @default [] (offences block nothing: only counted, for the ban tier)
   */
  blocks?: readonly number[] | EscalationFactor
  /**
   * How long offences are remembered, in ms from the first offence of a run; an offence after
   * that starts a new count at 1. `'block'`: for as long as the client stays blocked, so the
   * first request admitted after a block starts over (what `@fastify/rate-limit`'s Redis store does).
   * @default 3600000 (one hour)
   */
  periodMs?: number | 'block'
  /**
   * After `after` offences within the period, the block is a ban lasting `durationMs`, or the
   * offence's own block when that is longer.
   */
  ban?: { after: number, durationMs?: number }
  /**
   * Every request rejected by a block (or ban) in force is itself an offence: the count rises and
   * the block restarts from that request for the new count (never ending earlier than the one in
   * force), reaching the ban tier as any offence does. With `blocks: { initialMs: W, factor: 2 }`
   * and `periodMs: 'block'` this is `@fastify/rate-limit`'s `exponentialBackoff`.
   * @default false (requests during a block are answered without being offences)
   */
  offendWhileBlocked?: boolean
  /**
   * Every rejected request (also one answered by a block in force) blocks the client until one
   * window after it: the client's window restarts while it keeps exceeding.
   * @default false
   */
  continueExceeding?: boolean
}

const DEFAULT_PERIOD_MS = 3_600_000
const DEFAULT_MAX_BLOCK_MS = 86_400_000
const RECORD_LENGTH = 4
/** `periodMs: 'block'` as normalized: offences last as long as the block. */
const BLOCK_PERIOD = 0

interface Normalized {
  readonly sequence: readonly number[]
  readonly initialMs: number
  readonly factor: number
  readonly maxMs: number
  readonly periodMs: number
  readonly banAfter: number
  readonly banMs: number
  readonly continueExceeding: boolean
  readonly offendWhileBlocked: boolean
}

export class Escalation implements Strategy {
  readonly name: string
  readonly lua: string
  readonly refund?: Strategy['refund']
  /** The wrapped strategy's: a Concurrency slot stays held until the response ends, escalation or not. */
  readonly heldUntilResponse?: boolean
  /** The wrapped strategy's: a calendar quota's periods are computed the same, escalation or not. */
  readonly periods?: Strategy['periods']
  /** The wrapped strategy's: a request may wait for a slot, escalation or not. */
  readonly maxWaitMs?: number
  readonly #inner: Strategy
  readonly #policy: Normalized

  /** Wraps `strategy` with `policy`; option paths in errors start with `path`. */
  constructor (strategy: Strategy, policy: EscalationPolicy, path = 'escalation') {
    this.#inner = strategy
    this.#policy = normalize(policy, path)
    this.name = `${strategy.name}+escalation`
    this.lua = escalationLua(strategy.lua, this.#policy)
    if (strategy.refund !== undefined) this.refund = this.#refund.bind(this)
    if (strategy.heldUntilResponse === true) this.heldUntilResponse = true
    if (strategy.periods !== undefined) this.periods = strategy.periods
    if (strategy.maxWaitMs !== undefined) this.maxWaitMs = strategy.maxWaitMs
  }

  /** The wrapped strategy. */
  get strategy (): Strategy {
    return this.#inner
  }

  /** The policy as normalized (defaults filled in): `new Escalation(strategy, policy)` builds the same strategy. */
  get policy (): EscalationPolicy {
    const p = this.#policy
    const blocks = p.sequence.length > 0 || p.initialMs === 0 ? [...p.sequence] : { initialMs: p.initialMs, factor: p.factor, maxMs: p.maxMs }
    return {
      blocks,
      periodMs: p.periodMs === BLOCK_PERIOD ? 'block' : p.periodMs,
      ...(p.banAfter > 0 ? { ban: { after: p.banAfter, durationMs: p.banMs } } : {}),
      continueExceeding: p.continueExceeding,
      ...(p.offendWhileBlocked ? { offendWhileBlocked: true } : {})
    }
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, bounds?: readonly number[]): StepResult {
    const policy = this.#policy
    let [offences, periodStart, blockedUntil, banned] = record(state, now, policy.periodMs)
    const innerState = wrapped(state)
    if (blockedUntil > 0 && policy.offendWhileBlocked) {
      const until = blockedUntil
      ;[offences, periodStart, blockedUntil, banned] = offend(policy, offences, periodStart, banned, now, windowMs)
      if (blockedUntil < until) blockedUntil = until
      const waitMs = blockedUntil - now
      // The wrapped state is stored again as it is: it must live as long as it says (a step
      // costing nothing reads its lifetime without changing what is stored).
      const probe = this.#inner.step(innerState, now, limit, windowMs, 0, bounds)
      return {
        state: compose(offences, periodStart, blockedUntil, banned, innerState ?? null),
        ttlMs: lifetime(probe.state === null ? 0 : probe.ttlMs, offences, periodStart, blockedUntil, now, policy.periodMs),
        keep: true,
        decision: rejection(limit, 0, waitMs, waitMs, offences, ESCALATION_OFFENCE | (banned === 1 ? ESCALATION_BANNED : 0))
      }
    }
    if (blockedUntil > 0) {
      let keep = false
      if (policy.continueExceeding && now + windowMs > blockedUntil) {
        blockedUntil = now + windowMs
        keep = true
      }
      const waitMs = blockedUntil - now
      return {
        state: compose(offences, periodStart, blockedUntil, banned, innerState ?? null),
        ttlMs: lifetime(0, offences, periodStart, blockedUntil, now, policy.periodMs),
        keep,
        decision: rejection(limit, 0, waitMs, waitMs, offences, banned === 1 ? ESCALATION_BANNED : 0)
      }
    }
    const result = this.#inner.step(innerState, now, limit, windowMs, cost, bounds)
    const decision = result.decision
    const innerTtl = result.state === null ? 0 : result.ttlMs
    if (decision.allowed || decision.retryAfterMs < 0) {
      return {
        state: compose(offences, periodStart, blockedUntil, banned, result.state),
        ttlMs: lifetime(innerTtl, offences, periodStart, blockedUntil, now, policy.periodMs),
        decision
      }
    }
    ;[offences, periodStart, blockedUntil, banned] = offend(policy, offences, periodStart, banned, now, windowMs)
    const waitMs = blockedUntil > now ? blockedUntil - now : 0
    return {
      state: compose(offences, periodStart, blockedUntil, banned, result.state),
      ttlMs: lifetime(innerTtl, offences, periodStart, blockedUntil, now, policy.periodMs),
      keep: true,
      decision: rejection(limit, decision.remaining, Math.max(decision.resetMs, waitMs), Math.max(decision.retryAfterMs, waitMs), offences, ESCALATION_OFFENCE | (banned === 1 ? ESCALATION_BANNED : 0))
    }
  }

  /** Gives back through the wrapped strategy; the offence record stays as it is. */
  #refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt?: number, bounds?: readonly number[]): StepResult {
    const [offences, periodStart, blockedUntil, banned] = record(state, now, this.#policy.periodMs)
    const result = this.#inner.refund!(wrapped(state), now, limit, windowMs, cost, chargedAt, bounds)
    return {
      state: compose(offences, periodStart, blockedUntil, banned, result.state),
      ttlMs: lifetime(result.state === null ? 0 : result.ttlMs, offences, periodStart, blockedUntil, now, this.#policy.periodMs),
      decision: result.decision
    }
  }

  encode (state: StrategyState): string {
    const head = `${state[0]!},${state[1]!},${state[2]!},${state[3]!}`
    return state.length > RECORD_LENGTH ? `${head}|${this.#inner.encode(state.slice(RECORD_LENGTH))}` : `${head}|`
  }

  /** The record must be four integers with offences >= 0 and banned 0 or 1; the rest is the wrapped strategy's. */
  decode (raw: string): StrategyState | undefined {
    const bar = raw.indexOf('|')
    if (bar < 0) return undefined
    const head = decodeState(raw.slice(0, bar), RECORD_LENGTH)
    if (head === undefined || !isIntegral(head) || head[0]! < 0 || (head[3] !== 0 && head[3] !== 1)) return undefined
    const inner = this.#inner.decode(raw.slice(bar + 1))
    return inner === undefined ? head : [...head, ...inner]
  }
}

/**
 * One more offence at `now`: the count rises (a new run starts the period), and the block is the
 * one for that count, a ban at the ban tier (the longer of the ban and the block), at least one
 * window with `continueExceeding`.
 */
function offend (policy: Normalized, offences: number, periodStart: number, banned: number, now: number, windowMs: number): [number, number, number, number] {
  if (offences === 0) periodStart = now
  offences += 1
  let blockMs = blockFor(policy, offences)
  if (policy.banAfter > 0 && offences >= policy.banAfter) {
    banned = 1
    blockMs = Math.max(blockMs, policy.banMs)
  }
  let blockedUntil = blockMs > 0 ? now + blockMs : 0
  if (policy.continueExceeding && now + windowMs > blockedUntil) blockedUntil = now + windowMs
  return [offences, periodStart, blockedUntil, banned]
}

/**
 * The record of a state at `now`: offences of an ended period forgotten, a block that ended
 * lifted (with `periodMs: 'block'`, its offences with it).
 */
function record (state: StrategyState | undefined, now: number, periodMs: number): [number, number, number, number] {
  if (state === undefined) return [0, 0, 0, 0]
  let offences = state[0]!
  let periodStart = state[1]!
  let blockedUntil = state[2]!
  let banned = state[3]!
  if (offences > 0 && periodMs !== BLOCK_PERIOD && now >= periodStart + periodMs) {
    offences = 0
    periodStart = 0
  }
  if (blockedUntil <= now) {
    blockedUntil = 0
    banned = 0
    if (periodMs === BLOCK_PERIOD) {
      offences = 0
      periodStart = 0
    }
  }
  return [offences, periodStart, blockedUntil, banned]
}

function wrapped (state: StrategyState | undefined): StrategyState | undefined {
  return state === undefined || state.length === RECORD_LENGTH ? undefined : state.slice(RECORD_LENGTH)
}

/** The state to store; null (delete) when neither the record nor the wrapped strategy holds anything. */
function compose (offences: number, periodStart: number, blockedUntil: number, banned: number, inner: StrategyState | number[] | null): number[] | null {
  if (inner === null) return offences === 0 && blockedUntil === 0 ? null : [offences, periodStart, blockedUntil, banned]
  return [offences, periodStart, blockedUntil, banned, ...inner]
}

/** How long the state must live: as long as the wrapped state, the block and the offence period. */
function lifetime (innerTtl: number, offences: number, periodStart: number, blockedUntil: number, now: number, periodMs: number): number {
  let ttl = Math.max(1, innerTtl)
  if (blockedUntil > now) ttl = Math.max(ttl, blockedUntil - now)
  if (offences > 0 && periodMs !== BLOCK_PERIOD) ttl = Math.max(ttl, periodStart + periodMs - now)
  return ttl
}

function rejection (limit: number, remaining: number, resetMs: number, retryAfterMs: number, offences: number, flags: number): Decision {
  return {
    allowed: false,
    limit,
    remaining,
    resetMs: Math.max(1, resetMs),
    retryAfterMs: Math.max(1, retryAfterMs),
    escalation: escalationOf(offences, flags)
  }
}

/** The block of the `offences`-th offence, in ms. Multiplied step by step so Lua computes the same doubles. */
function blockFor (policy: Normalized, offences: number): number {
  if (policy.sequence.length > 0) return policy.sequence[Math.min(offences, policy.sequence.length) - 1]!
  if (policy.initialMs === 0) return 0
  let block = policy.initialMs
  for (let i = 2; i <= offences && block < policy.maxMs; i++) block *= policy.factor
  return Math.min(Math.floor(block), policy.maxMs)
}

function normalize (policy: EscalationPolicy, path: string): Normalized {
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) invalidOption(path, 'an object', policy)
  const periodMs = policy.periodMs === 'block' ? BLOCK_PERIOD : durationOption(`${path}.periodMs`, policy.periodMs, DEFAULT_PERIOD_MS, 1)
  let sequence: readonly number[] = []
  let initialMs = 0
  let factor = 2
  let maxMs = DEFAULT_MAX_BLOCK_MS
  const blocks = policy.blocks
  if (Array.isArray(blocks)) {
    sequence = blocks.map((ms, i) => durationOption(`${path}.blocks[${i}]`, ms, 0, 0))
  } else if (blocks !== undefined) {
    if (blocks === null || typeof blocks !== 'object') invalidOption(`${path}.blocks`, 'an array of durations in ms, or { initialMs, factor?, maxMs? }', blocks)
    const growth = blocks as EscalationFactor
    initialMs = durationOption(`${path}.blocks.initialMs`, growth.initialMs, undefined, 1)
    if (growth.factor !== undefined && (typeof growth.factor !== 'number' || !Number.isFinite(growth.factor) || growth.factor < 1)) {
      invalidOption(`${path}.blocks.factor`, 'a finite number >= 1', growth.factor)
    }
    factor = growth.factor ?? 2
    maxMs = durationOption(`${path}.blocks.maxMs`, growth.maxMs, Math.max(DEFAULT_MAX_BLOCK_MS, initialMs), initialMs)
  }
  let banAfter = 0
  let banMs = 0
  if (policy.ban !== undefined) {
    const ban = policy.ban
    if (ban === null || typeof ban !== 'object') invalidOption(`${path}.ban`, 'an object { after, durationMs? }', ban)
    banAfter = durationOption(`${path}.ban.after`, ban.after, undefined, 1)
    banMs = periodMs === BLOCK_PERIOD && ban.durationMs === undefined ? 1 : durationOption(`${path}.ban.durationMs`, ban.durationMs, periodMs, 1)
  }
  const continueExceeding = policy.continueExceeding ?? false
  if (typeof continueExceeding !== 'boolean') invalidOption(`${path}.continueExceeding`, 'a boolean', continueExceeding)
  const offendWhileBlocked = policy.offendWhileBlocked ?? false
  if (typeof offendWhileBlocked !== 'boolean') invalidOption(`${path}.offendWhileBlocked`, 'a boolean', offendWhileBlocked)
  if (sequence.length === 0 && initialMs === 0 && banAfter === 0 && !continueExceeding) {
    invalidOption(path, 'a policy that does something: blocks, ban or continueExceeding', policy)
  }
  return { sequence, initialMs, factor, maxMs, periodMs, banAfter, banMs, continueExceeding, offendWhileBlocked }
}

/** An integer >= `min` (ms or a count); `fallback` when absent (required when undefined). */
function durationOption (name: string, value: unknown, fallback: number | undefined, min: number): number {
  if (value === undefined && fallback !== undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) invalidOption(name, `an integer >= ${min}`, value)
  return value
}

/** The Lua twin: the wrapped twin called from inside, the policy's numbers written into the script. */
function escalationLua (innerLua: string, policy: Normalized): string {
  return `${LUA_DECODE}
local inner = (function()
${innerLua}
end)()
local SEQUENCE = { ${policy.sequence.map(String).join(', ')} }
local INITIAL, FACTOR, MAX_BLOCK = ${String(policy.initialMs)}, ${String(policy.factor)}, ${String(policy.maxMs)}
local PERIOD, BAN_AFTER, BAN_MS = ${String(policy.periodMs)}, ${String(policy.banAfter)}, ${String(policy.banMs)}
local CONTINUE = ${policy.continueExceeding ? 'true' : 'false'}
local OFFEND_WHILE_BLOCKED = ${policy.offendWhileBlocked ? 'true' : 'false'}
local function block_for(offences)
  if #SEQUENCE > 0 then return SEQUENCE[math.min(offences, #SEQUENCE)] end
  if INITIAL == 0 then return 0 end
  local block = INITIAL
  local i = 2
  while i <= offences and block < MAX_BLOCK do
    block = block * FACTOR
    i = i + 1
  end
  return math.min(math.floor(block), MAX_BLOCK)
end
local function compose(c, p, b, ban, value)
  local head = fmt(c) .. ',' .. fmt(p) .. ',' .. fmt(b) .. ',' .. fmt(ban) .. '|'
  if value then return head .. value end
  if c == 0 and b == 0 then return false end
  return head
end
local function lifetime(inner_ttl, c, p, b, now)
  local ttl = math.max(1, inner_ttl)
  if b > now then ttl = math.max(ttl, b - now) end
  if c > 0 and PERIOD ~= 0 then ttl = math.max(ttl, p + PERIOD - now) end
  return ttl
end
local function offend(c, p, ban, now, window)
  if c == 0 then p = now end
  c = c + 1
  local block = block_for(c)
  if BAN_AFTER > 0 and c >= BAN_AFTER then
    ban = 1
    block = math.max(block, BAN_MS)
  end
  local b = 0
  if block > 0 then b = now + block end
  if CONTINUE and now + window > b then b = now + window end
  return c, p, b, ban
end
return function(raw, now, limit, window, cost, refund, charged_at, bounds)
  local c, p, b, ban = 0, 0, 0, 0
  local inner_raw = false
  if raw then
    local bar = string.find(raw, '|', 1, true)
    if bar then
      local e = decode_state(string.sub(raw, 1, bar - 1), 4)
      if e ~= nil and is_integral(e) and e[1] >= 0 and (e[4] == 0 or e[4] == 1) then
        c, p, b, ban = e[1], e[2], e[3], e[4]
        inner_raw = string.sub(raw, bar + 1)
      end
    end
  end
  if c > 0 and PERIOD ~= 0 and now >= p + PERIOD then c, p = 0, 0 end
  if b <= now then
    b, ban = 0, 0
    if PERIOD == 0 then c, p = 0, 0 end
  end
  if refund == 1 then
    local value, ttl, allowed, remaining, reset, retry, delay = inner(inner_raw, now, limit, window, cost, refund, charged_at, bounds)
    local inner_ttl = 0
    if value then inner_ttl = ttl end
    return compose(c, p, b, ban, value), lifetime(inner_ttl, c, p, b, now), allowed, remaining, reset, retry, delay or 0
  end
  local flags = 0
  if b > 0 and OFFEND_WHILE_BLOCKED then
    local until_ = b
    c, p, b, ban = offend(c, p, ban, now, window)
    if b < until_ then b = until_ end
    flags = 1
    if ban == 1 then flags = 3 end
    local wait = math.max(1, b - now)
    local probe, probe_ttl = inner(inner_raw, now, limit, window, 0, 0, charged_at, bounds)
    local inner_ttl = 0
    if probe then inner_ttl = probe_ttl end
    return compose(c, p, b, ban, inner_raw), lifetime(inner_ttl, c, p, b, now), 0, 0, wait, wait, 0, 1, c, flags
  end
  if b > 0 then
    local keep = 0
    if CONTINUE and now + window > b then
      b = now + window
      keep = 1
    end
    if ban == 1 then flags = 2 end
    local wait = math.max(1, b - now)
    return compose(c, p, b, ban, inner_raw), lifetime(0, c, p, b, now), 0, 0, wait, wait, 0, keep, c, flags
  end
  local value, ttl, allowed, remaining, reset, retry, delay = inner(inner_raw, now, limit, window, cost, 0, charged_at, bounds)
  if allowed == true then allowed = 1 elseif allowed ~= 1 then allowed = 0 end
  local inner_ttl = 0
  if value then inner_ttl = ttl end
  if allowed == 1 or retry < 0 then
    return compose(c, p, b, ban, value), lifetime(inner_ttl, c, p, b, now), allowed, remaining, reset, retry, delay or 0
  end
  c, p, b, ban = offend(c, p, ban, now, window)
  local wait = 0
  if b > now then wait = b - now end
  flags = 1
  if ban == 1 then flags = 3 end
  return compose(c, p, b, ban, value), lifetime(inner_ttl, c, p, b, now), 0, remaining,
    math.max(1, math.max(reset, wait)), math.max(1, math.max(retry, wait)), 0, 1, c, flags
end
`
}
