/**
 * The Lua that RedisBackend runs: one evaluation script per combination of strategies (their
 * Lua twins composed into a single script, so any number of limits is decided in one round trip),
 * and the small scripts behind the primitives. Scripts are run by EVALSHA; the first use on a
 * backend and a NOSCRIPT answer (script cache flushed, failover, another cluster node) fall back
 * to EVAL, which also loads the script on that node.
 */
import { createHash } from 'node:crypto'
import type { EvaluateOp } from '../../types/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { isNoScript, type RedisDriver } from './redis-driver.js'

/** A Lua script with its SHA1. */
export class RedisScript {
  readonly source: string
  readonly sha: string
  /** True once this script was sent in full at least once; from then on EVALSHA is tried first. */
  loaded = false

  constructor (source: string) {
    this.source = source
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  /** Runs the script on the node that owns `keys` (they must share a slot on a cluster). */
  run (driver: RedisDriver, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    if (!this.loaded) {
      return driver.eval(this.source, keys, args).then((result) => {
        this.loaded = true
        return result
      })
    }
    // Written with then rather than async/await: this is on every decision, and each async
    // layer costs a promise and a turn of the microtask queue.
    return driver.evalSha(this.sha, keys, args).then(undefined, async (error: unknown) => {
      if (!isNoScript(error)) throw error
      return await driver.eval(this.source, keys, args)
    })
  }
}

/** How many arguments the evaluation script takes per op (after the mode). */
export const ARGS_PER_OP = 6

/** How many numbers the evaluation script returns per op; the server time of the decision follows the last op's. */
export const RESULT_WIDTH = 7

/** The length of the single-op script's short reply (see singleEvaluationScript). */
export const SHORT_RESULT_WIDTH = 5

/**
 * The opening every evaluation script shares: effects replication, the server clock in ms, the
 * mode, and the helpers of every op: `charge_time(arg)` (an op's chargedAt argument; empty or
 * absent: now), `period_bounds(arg)` (a calendar strategy's comma-separated bounds; empty or
 * absent: none), `as_flag(allowed)` (a twin's allowed, true/1, as 1 or 0) and
 * `write_state(key, value, ttl)` (SET with the TTL, or DEL when the twin returned no state).
 */
const SCRIPT_OPENING = `if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local mode = ARGV[1]
local refund = 0
if mode == 'refund' then refund = 1 end
local function charge_time(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  return now
end
local function period_bounds(arg)
  if arg == nil or arg == '' then return nil end
  local bounds = {}
  for b in string.gmatch(arg, '[^,]+') do bounds[#bounds + 1] = tonumber(b) end
  return bounds
end
local function as_flag(allowed)
  if allowed == true or allowed == 1 then return 1 end
  return 0
end
local function write_state(key, value, ttl)
  if value then
    redis.call('SET', key, value, 'PX', math.max(1, math.ceil(ttl)))
  else
    redis.call('DEL', key)
  end
end
`

/** Lua: the twins of a multi-op script, each loaded once, in a table indexed by the op's twin argument. */
function loadedTwins (twins: readonly string[]): string {
  const loaded = twins.map((lua, i) => `local twin_${i + 1} = (function()\n${lua}\nend)()`).join('\n')
  return `${loaded}\nlocal twins = { ${twins.map((_, i) => `twin_${i + 1}`).join(', ')} }`
}

/**
 * The evaluation script for a set of Lua twins. KEYS are the namespaced keys of the ops; ARGV is
 * `mode, then per op: twin index, limit, windowMs, cost, chargedAt, bounds` (chargedAt only matters for
 * refunds; empty when the caller gave none, then the charge is taken as made now; bounds are a
 * calendar strategy's period bounds, comma-separated, empty for every other strategy). It reads the
 * server clock once, GETs every key, steps every twin, writes only when the mode says so ('hit'
 * only if every op is allowed, 'refund' always, 'check' never; and in 'hit' the rejections a twin
 * keeps: an escalation policy's offence record) and returns `allowed, remaining, reset, retry,
 * delay, offences, flags` per op (offences -1 without an escalation policy), then the server
 * time of the decision.
 */
export function evaluationScript (twins: readonly string[]): string {
  return `${SCRIPT_OPENING}${loadedTwins(twins)}
local n = #KEYS
local raws = {}
for i = 1, n do raws[i] = redis.call('GET', KEYS[i]) end
local values, ttls, keeps, out = {}, {}, {}, {}
local every_allowed = true
for i = 1, n do
  local a = 1 + (i - 1) * ${ARGS_PER_OP}
  local twin = twins[tonumber(ARGV[a + 1])]
  local value, ttl, allowed, remaining, reset, retry, delay, keep, offences, flags =
    twin(raws[i], now, tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), refund, charge_time(ARGV[a + 5]), period_bounds(ARGV[a + 6]))
  allowed = as_flag(allowed)
  if allowed == 0 then every_allowed = false end
  values[i], ttls[i], keeps[i] = value, ttl, allowed == 0 and keep == 1
  local o = (i - 1) * ${RESULT_WIDTH}
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = allowed, remaining, reset, retry, delay or 0
  out[o + 6], out[o + 7] = offences or -1, flags or 0
end
out[n * ${RESULT_WIDTH} + 1] = now
local commit = mode == 'refund' or (mode == 'hit' and every_allowed)
for i = 1, n do
  if commit or (mode == 'hit' and keeps[i]) then write_state(KEYS[i], values[i], ttls[i]) end
end
return out
`
}

/**
 * The opening of both single-op scripts: the shared opening, the twin, the charge time and a
 * calendar strategy's bounds (ARGV[7], absent or empty for every other strategy).
 */
function singleOpPrologue (twin: string): string {
  return `${SCRIPT_OPENING}local twin = (function()
${twin}
end)()
local charged_at = charge_time(ARGV[6])
local bounds = period_bounds(ARGV[7])
`
}

/**
 * The evaluation script for exactly one op: the same arguments and transition as
 * `evaluationScript([twin])` with one key (the bounds argument sent only when there are bounds),
 * written without the tables and loops that several ops need (one limit per request is the
 * common case, and each table costs the server per call).
 * Its reply is the same too, except that a decision without delay and escalation is sent short
 * (`SHORT_RESULT_WIDTH`: allowed, remaining, reset, retry, then the server time): fewer numbers
 * for the server to write and the client to read.
 */
export function singleEvaluationScript (twin: string): string {
  return `${singleOpPrologue(twin)}local value, ttl, allowed, remaining, reset, retry, delay, keep, offences, flags =
  twin(redis.call('GET', KEYS[1]), now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), refund, charged_at, bounds)
allowed = as_flag(allowed)
if refund == 1 or (mode == 'hit' and (allowed == 1 or keep == 1)) then write_state(KEYS[1], value, ttl) end
if (delay == nil or delay == 0) and offences == nil then return { allowed, remaining, reset, retry, now } end
return { allowed, remaining, reset, retry, delay or 0, offences or -1, flags or 0, now }
`
}

/** How many more arguments an op takes in the scripts that read overrides: throttle field, identifier field, fixed cost. */
export const OVERRIDE_ARGS = 3

/** The reply width per op of the scripts that read overrides: `RESULT_WIDTH`, then kind, limit, windowMs, cost. */
export const OVERRIDE_RESULT_WIDTH = RESULT_WIDTH + 4

/**
 * Applies the fleet's overrides inside a decision. A hash field holds one override, pre-parsed so
 * no rate string is parsed here: `limit,windowMs,cost,disabled,shadow,expiresAt` (empty: not
 * set; limit -1: unlimited; expiresAt in ms on the server's clock). The identifier's own values
 * win over the throttle's, value by value; `disabled` from either turns the limit off; `shadow`
 * is the throttle's and only in 'hit' mode. Kinds: 0 none in force, 1 applied, 2 off (disabled or
 * unlimited: nothing charged), 3 shadow (charges, never rejects the request).
 */
const OVERRIDES_LUA = `local function parse_override(raw, now)
  if not raw then return nil end
  local l, w, c, d, s, e = string.match(raw, '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$')
  if l == nil then return nil end
  if e ~= '' and tonumber(e) <= now then return nil end
  return { tonumber(l), tonumber(w), tonumber(c), d, s }
end
local function overridden(t_raw, i_raw, now, limit, window, cost, fixed_cost, hit)
  local t, i = parse_override(t_raw, now), parse_override(i_raw, now)
  if t == nil and i == nil then return limit, window, cost, 0 end
  if i and i[1] then limit, window = i[1], i[2] or window elseif t and t[1] then limit, window = t[1], t[2] or window end
  if not fixed_cost then
    if i and i[3] then cost = i[3] elseif t and t[3] then cost = t[3] end
  end
  if (i and i[4] == '1') or (t and t[4] == '1') or limit < 0 then return limit, window, cost, 2 end
  if hit and t and t[5] == '1' then return limit, window, cost, 3 end
  return limit, window, cost, 1
end`

/**
 * `singleEvaluationScript` reading the fleet's overrides too: KEYS are the op's key and the
 * overrides' field hash; ARGV adds, after the bounds (always sent, maybe empty), the throttle's
 * field, the identifier's field and '1' when the cost is the caller's. One HMGET reads both
 * fields. With no override in force the reply is the plain script's; otherwise it is the long
 * reply followed by kind, limit, windowMs and cost (`OVERRIDE_RESULT_WIDTH` + 1 numbers).
 */
export function singleOverriddenScript (twin: string): string {
  return `${singleOpPrologue(twin)}local limit, window, cost, kind = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), 0
local found = redis.call('HMGET', KEYS[2], ARGV[8], ARGV[9])
if found[1] or found[2] then
${OVERRIDES_LUA}
  limit, window, cost, kind = overridden(found[1], found[2], now, limit, window, cost, ARGV[10] == '1', mode == 'hit')
end
local value, ttl, allowed, remaining, reset, retry, delay, keep, offences, flags
if kind == 2 then
  allowed, remaining, reset, retry = 1, math.max(limit, 0), 0, 0
elseif limit == 0 then
  allowed, remaining, reset, retry = 0, 0, window, -1
else
  value, ttl, allowed, remaining, reset, retry, delay, keep, offences, flags =
    twin(redis.call('GET', KEYS[1]), now, limit, window, cost, refund, charged_at, bounds)
  allowed = as_flag(allowed)
  if refund == 1 or (mode == 'hit' and (allowed == 1 or (keep == 1 and kind ~= 3))) then write_state(KEYS[1], value, ttl) end
end
if kind == 0 then
  if (delay == nil or delay == 0) and offences == nil then return { allowed, remaining, reset, retry, now } end
  return { allowed, remaining, reset, retry, delay or 0, offences or -1, flags or 0, now }
end
return { allowed, remaining, reset, retry, delay or 0, offences or -1, flags or 0, now, kind, limit, window, cost }
`
}

/**
 * `evaluationScript` reading the fleet's overrides too: KEYS are the ops' keys, then the
 * overrides' field hash; each op takes `OVERRIDE_ARGS` more arguments (see singleOverriddenScript);
 * one HMGET reads every field. All-or-nothing holds among the enforcing ops; ops an override put
 * in shadow are written only when every enforcing op and every shadow op allowed (as shadow
 * limits are decided after the enforcing ones elsewhere); ops an override turned off are neither
 * decided nor written. The reply is `OVERRIDE_RESULT_WIDTH` numbers per op, then the server time.
 */
export function overriddenEvaluationScript (twins: readonly string[]): string {
  const width = ARGS_PER_OP + OVERRIDE_ARGS
  return `${SCRIPT_OPENING}${loadedTwins(twins)}
${OVERRIDES_LUA}
local n = #KEYS - 1
local fields = {}
for i = 1, n do
  local a = 1 + (i - 1) * ${width}
  fields[2 * i - 1], fields[2 * i] = ARGV[a + 7], ARGV[a + 8]
end
local found = redis.call('HMGET', KEYS[n + 1], unpack(fields))
local raws = {}
for i = 1, n do raws[i] = redis.call('GET', KEYS[i]) end
local values, ttls, keeps, kinds, decided, out = {}, {}, {}, {}, {}, {}
local every_allowed, shadows_allowed = true, true
for i = 1, n do
  local a = 1 + (i - 1) * ${width}
  local twin = twins[tonumber(ARGV[a + 1])]
  local limit, window, cost, kind = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), 0
  if found[2 * i - 1] or found[2 * i] then
    limit, window, cost, kind = overridden(found[2 * i - 1], found[2 * i], now, limit, window, cost, ARGV[a + 9] == '1', mode == 'hit')
  end
  local value, ttl, allowed, remaining, reset, retry, delay, keep, offences, flags
  decided[i] = false
  if kind == 2 then
    allowed, remaining, reset, retry = 1, math.max(limit, 0), 0, 0
  elseif limit == 0 then
    allowed, remaining, reset, retry = 0, 0, window, -1
  else
    value, ttl, allowed, remaining, reset, retry, delay, keep, offences, flags =
      twin(raws[i], now, limit, window, cost, refund, charge_time(ARGV[a + 5]), period_bounds(ARGV[a + 6]))
    allowed = as_flag(allowed)
    decided[i] = true
  end
  if kind == 3 then
    if allowed == 0 then shadows_allowed = false end
  elseif kind ~= 2 and allowed == 0 then
    every_allowed = false
  end
  values[i], ttls[i], keeps[i], kinds[i] = value, ttl, allowed == 0 and keep == 1 and kind ~= 3, kind
  local o = (i - 1) * ${OVERRIDE_RESULT_WIDTH}
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = allowed, remaining, reset, retry, delay or 0
  out[o + 6], out[o + 7] = offences or -1, flags or 0
  out[o + 8], out[o + 9], out[o + 10], out[o + 11] = kind, limit, window, cost
end
out[n * ${OVERRIDE_RESULT_WIDTH} + 1] = now
local commit = mode == 'refund' or (mode == 'hit' and every_allowed)
for i = 1, n do
  local write
  if kinds[i] == 3 then write = mode == 'hit' and every_allowed and shadows_allowed
  else write = commit or (mode == 'hit' and keeps[i]) end
  if decided[i] and write then write_state(KEYS[i], values[i], ttls[i]) end
end
return out
`
}

/**
 * Caches one evaluation script per combination of twins. Twins are identified by their Lua text
 * (two FixedWindow instances share one), and a combination by the sorted twin ids, so the order
 * of the limits does not multiply scripts.
 */
export class EvaluationScripts {
  readonly #twinIds = new Map<string, number>()
  readonly #twins: string[] = []
  readonly #idOfStrategy = new WeakMap<Strategy, number>()
  readonly #scripts = new Map<string, { script: RedisScript, indexOf: Map<number, number> }>()
  readonly #singles: Array<RedisScript | undefined> = []
  readonly #overridden = new Map<string, { script: RedisScript, indexOf: Map<number, number> }>()
  readonly #overriddenSingles: Array<RedisScript | undefined> = []

  /** The twin id of a strategy (stable for the life of this cache). */
  twinId (strategy: Strategy): number {
    let id = this.#idOfStrategy.get(strategy)
    if (id !== undefined) return id
    const lua = strategy.lua
    if (typeof lua !== 'string' || lua.length === 0) throw new TypeError(`strategy '${strategy.name}' has no Lua twin`)
    id = this.#twinIds.get(lua)
    if (id === undefined) {
      id = this.#twins.length
      this.#twins.push(lua)
      this.#twinIds.set(lua, id)
    }
    this.#idOfStrategy.set(strategy, id)
    return id
  }

  /**
   * The script for the given twin ids (one id per op), and for each id its 1-based index in the
   * script's twin table. One id means one op: its script decides exactly one key.
   */
  scriptFor (ids: readonly number[]): { script: RedisScript, indexOf: Map<number, number> } {
    if (ids.length === 1) return { script: this.singleScript(ids[0]!), indexOf: new Map([[ids[0]!, 1]]) }
    return this.#composed(this.#scripts, ids, evaluationScript)
  }

  /**
   * The script deciding exactly one op of the given twin (singleEvaluationScript). One limit
   * per request is the common case: found by twin id, no key string built per request.
   */
  singleScript (id: number): RedisScript {
    return this.#single(this.#singles, id, singleEvaluationScript)
  }

  /** The script for several ops that also reads the fleet's overrides (overriddenEvaluationScript). */
  overriddenScriptFor (ids: readonly number[]): { script: RedisScript, indexOf: Map<number, number> } {
    return this.#composed(this.#overridden, ids, overriddenEvaluationScript)
  }

  /** The script for one op that also reads the fleet's overrides (singleOverriddenScript). */
  singleOverriddenScript (id: number): RedisScript {
    return this.#single(this.#overriddenSingles, id, singleOverriddenScript)
  }

  /** The script of one kind (`compose`) for a set of twin ids, built once per set and kept in `cache`. */
  #composed (cache: Map<string, { script: RedisScript, indexOf: Map<number, number> }>, ids: readonly number[], compose: (twins: readonly string[]) => string): { script: RedisScript, indexOf: Map<number, number> } {
    const distinct = [...new Set(ids)].sort((a, b) => a - b)
    const cacheKey = distinct.join(',')
    let entry = cache.get(cacheKey)
    if (entry === undefined) {
      entry = this.#build(distinct, compose)
      cache.set(cacheKey, entry)
    }
    return entry
  }

  /** The single-op script of one kind (`compose`) for a twin id, built once and kept in `cache`. */
  #single (cache: Array<RedisScript | undefined>, id: number, compose: (twin: string) => string): RedisScript {
    let single = cache[id]
    if (single === undefined) {
      single = new RedisScript(compose(this.#twins[id]!))
      cache[id] = single
    }
    return single
  }

  #build (distinct: readonly number[], compose = evaluationScript): { script: RedisScript, indexOf: Map<number, number> } {
    const indexOf = new Map<number, number>()
    distinct.forEach((id, i) => indexOf.set(id, i + 1))
    return { script: new RedisScript(compose(distinct.map((id) => this.#twins[id]!))), indexOf }
  }
}

/**
 * The bounds argument of an op: its own, or, for a calendar strategy called without them, the
 * bounds at the app host's time (the script picks the period by the server's clock among them).
 */
export function boundsArgument (op: EvaluateOp): string {
  const bounds = op.bounds ?? op.strategy.periods?.bounds(Date.now())
  return bounds === undefined ? '' : bounds.join(',')
}

/** INCRBY that gives a key without a TTL (new, or made by a plain increment) the TTL, atomically. */
export const INCREMENT_WITH_TTL_LUA = `local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
`

/** Deletes a lock only if it still holds this holder's token. */
export const RELEASE_LOCK_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`

/**
 * Replaces the fleet's overrides at once: KEYS are the record and the field hash; ARGV the record
 * (empty: none, so the key goes) and then field, value pairs, written in batches (Lua's stack
 * bounds how many arguments one call takes).
 */
export const WRITE_OVERRIDES_LUA = `if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('DEL', KEYS[2])
local batch = {}
for i = 2, #ARGV, 2 do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i + 1]
  if #batch >= 200 then
    redis.call('HSET', KEYS[2], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('HSET', KEYS[2], unpack(batch)) end
return 1
`
