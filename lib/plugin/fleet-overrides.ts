/**
 * `fastify.throttle.overrides`: changes to throttles made once for every instance of an app. The
 * overrides live in one record in the plugin's default backend; each instance reads it every
 * `refreshMs` and applies it to its throttles, so a change reaches the whole fleet within
 * `refreshMs` plus one backend round trip, and decisions never wait for it.
 *
 * With `inDecision` on Redis (one node or Sentinel) every write also replaces, in the same script, a hash of the
 * overrides pre-parsed for Lua (`<key>:fields`, one field per throttle and per throttle and
 * identifier), which the decision scripts of limits on that backend read: there a change applies
 * from the very next decision of every instance.
 */
import type { FastifyBaseLogger } from 'fastify'
import { RedisBackend } from '../backends/redis-backend.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import { BackendError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { compileOverride, type CompiledOverride, type LimitOverrides, type OverrideValues } from '../throttle/overrides.js'
import { boundIdentifier } from '../throttle/identifier.js'
import { limitOf, type Throttle } from '../throttle/throttle.js'

/** Options of `overrides` (plugin option). */
export interface OverridesOptions {
  /**
   * How often each instance reads the overrides from the default backend, in ms: the bound on
   * how long a change made elsewhere takes to apply here (plus one backend round trip).
   * @default 1000
   */
  refreshMs?: number
  /**
   * The backend key holding this app's overrides. Apps sharing a backend keep apart by key.
   * @default 'traffik:overrides'
   */
  key?: string
  /**
   * On a RedisBackend on one node (or Sentinel): read the overrides inside each decision's script
   * as well, so a change applies from the very next decision of every instance (bound 0) instead
   * of within `refreshMs`. Each decision script then reads one hash more (one HMGET, measured at a
   * few µs of Redis CPU per decision with no override set: docs/overrides.md). Ignored elsewhere.
   * @default false
   */
  inDecision?: boolean
}

/** Where an override applies: a throttle, or one client of it. */
export interface OverrideTarget {
  /** One client (the identifier the throttle computes, e.g. an API key); omitted: the whole throttle. */
  identifier?: string
}

/** One stored override. */
export interface OverrideEntry {
  readonly uid: string
  readonly identifier?: string
  readonly values: OverrideValues
  /** When it lapses (ms since the epoch); omitted: it stays until cleared. */
  readonly expiresAt?: number
}

interface StoredRecord { v: 1, entries: OverrideEntry[] }

const LOCK_TTL_MS = 5000

export function validateOverridesOptions (options: unknown): Required<OverridesOptions> | false {
  if (options === false) return false
  if (options === undefined) return { refreshMs: 1000, key: 'traffik:overrides', inDecision: false }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) invalidOption('overrides', 'false or { refreshMs?, key?, inDecision? }', options)
  rejectUnknownKeys('overrides', options, ['refreshMs', 'key', 'inDecision'], 'overrides')
  const { refreshMs = 1000, key = 'traffik:overrides', inDecision = false } = options as OverridesOptions
  if (!Number.isSafeInteger(refreshMs) || refreshMs < 10) invalidOption('overrides.refreshMs', 'an integer of at least 10 (ms)', refreshMs)
  if (typeof key !== 'string' || key.length === 0) invalidOption('overrides.key', 'a non-empty string', key)
  if (typeof inDecision !== 'boolean') invalidOption('overrides.inDecision', 'a boolean', inDecision)
  return { refreshMs, key, inDecision }
}

export class FleetOverrides {
  /** How often this instance reads the overrides, in ms. */
  readonly refreshMs: number
  readonly #key: string
  /** The hash of pre-parsed overrides that Redis decision scripts read. */
  readonly #fieldsKey: string
  readonly #backend: ThrottleBackend
  /** The default backend when it reads overrides inside decisions (the `inDecision` option on Redis). */
  readonly #redis: RedisBackend | undefined
  readonly #throttles: () => Iterable<Throttle>
  /** The overrides applied now, by throttle uid. */
  #applied = new Map<string, LimitOverrides>()
  /** The record last applied, as stored, so an unchanged one costs nothing. */
  #appliedRaw: string | null = null
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #log: FastifyBaseLogger | undefined
  #failing = false
  readonly #badEntries = new Set<string>()

  constructor (backend: ThrottleBackend, options: Required<OverridesOptions>, throttles: () => Iterable<Throttle>) {
    this.#backend = backend
    this.#redis = options.inDecision && backend instanceof RedisBackend ? backend : undefined
    this.refreshMs = options.refreshMs
    this.#key = options.key
    this.#fieldsKey = `${options.key}:fields`
    this.#throttles = throttles
  }

  /**
   * Sets an override of throttle `uid` (or of one of its clients) for every instance, replacing
   * any earlier one for the same target. Applies here at once, elsewhere within `refreshMs`.
   * `ttlMs`: it lapses by itself after this long. Validated like options (coded errors).
   */
  async set (uid: string, values: OverrideValues, { identifier, ttlMs }: OverrideTarget & { ttlMs?: number } = {}): Promise<void> {
    checkTarget(uid, identifier)
    compileOverride(values, identifier !== undefined)
    if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)) invalidOption('ttlMs', 'a positive integer (ms)', ttlMs)
    const entry: OverrideEntry = {
      uid,
      ...(identifier === undefined ? {} : { identifier }),
      values: { ...values },
      ...(ttlMs === undefined ? {} : { expiresAt: Date.now() + ttlMs })
    }
    await this.#update((entries) => [...entries.filter((e) => !sameTarget(e, uid, identifier)), entry])
  }

  /** The override of throttle `uid` (or of one client), as stored; undefined when there is none. */
  async get (uid: string, { identifier }: OverrideTarget = {}): Promise<OverrideValues | undefined> {
    checkTarget(uid, identifier)
    return (await this.list()).find((e) => sameTarget(e, uid, identifier))?.values
  }

  /**
   * Removes overrides for every instance: of one target (`clear(uid)` the throttle's own,
   * `clear(uid, { identifier })` one client's), or every override (`clear()`). Resolves how many went.
   */
  async clear (uid?: string, { identifier }: OverrideTarget = {}): Promise<number> {
    if (uid !== undefined) checkTarget(uid, identifier)
    let removed = 0
    await this.#update((entries) => {
      const kept = uid === undefined ? [] : entries.filter((e) => !sameTarget(e, uid, identifier))
      removed = entries.length - kept.length
      return kept
    }, uid === undefined)
    return removed
  }

  /** Every override in force, as stored (lapsed ones left out). */
  async list (): Promise<OverrideEntry[]> {
    return live(this.#parse(await this.#backend.get(this.#key)))
  }

  /** Reads the overrides now and applies them here (the timer does this every `refreshMs`). */
  async refresh (): Promise<void> {
    this.#refreshing ??= this.#read().finally(() => { this.#refreshing = undefined })
    await this.#refreshing
  }

  /** Starts reading every `refreshMs` (the plugin calls it once its backend is ready). */
  start (log: FastifyBaseLogger): void {
    this.#log = log
    if (this.#timer !== undefined) return
    // #read never rejects: a failed read is logged and the last overrides stay in force.
    this.#timer = setInterval(() => { this.refresh().catch(() => {}) }, this.refreshMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Gives a throttle registered after the last read the overrides in force for its uid. */
  adopt (throttle: Throttle): void {
    const limit = limitOf(throttle)
    limit.setOverrides(this.#applied.get(throttle.uid))
    if (this.#redis !== undefined) limit.setOverrideSource(this.#redis, this.#fieldsKey, { throttle: throttleField(throttle.uid), identifierPrefix: IDENTIFIER_FIELD })
  }

  /**
   * Writes the hash the decision scripts read from the record as it stands (Redis on one node):
   * overrides stored before the hash existed apply from the first decision too. A record that is
   * not readable is left as it is (reported by the reads).
   */
  async syncFields (): Promise<void> {
    if (this.#redis?.overridesInScript !== true) return
    try {
      await this.#update((entries) => entries)
    } catch (error) {
      this.#log?.warn({ err: error }, 'fastify-traffik: could not write the fleet overrides for the decision scripts; they apply within refreshMs')
    }
  }

  async #read (): Promise<void> {
    let raw: string | null
    try {
      raw = await this.#backend.get(this.#key)
    } catch (error) {
      if (!this.#failing) this.#log?.warn({ err: error }, 'fastify-traffik: could not read the fleet overrides; the last ones read stay in force')
      this.#failing = true
      return
    }
    if (this.#failing) this.#log?.info('fastify-traffik: fleet overrides read again')
    this.#failing = false
    // A lapsing override changes what applies without the record changing.
    if (raw === this.#appliedRaw && !this.#anyExpiry()) return
    this.#apply(raw)
  }

  #anyExpiry (): boolean {
    for (const overrides of this.#applied.values()) if (overrides.expiresAt !== undefined) return true
    return false
  }

  #apply (raw: string | null): void {
    let entries: OverrideEntry[]
    try {
      entries = live(this.#parse(raw))
    } catch (error) {
      this.#log?.warn({ err: error }, 'fastify-traffik: the fleet overrides record is not readable; the last ones read stay in force')
      return
    }
    const byUid = new Map<string, { throttle: CompiledOverride | undefined, identifiers: Map<string, CompiledOverride>, expiresAt: number | undefined }>()
    for (const entry of entries) {
      let compiled: CompiledOverride
      try {
        compiled = compileOverride(entry.values, entry.identifier !== undefined, `override of ${entry.uid}`)
      } catch (error) {
        const id = `${entry.uid}\u0000${entry.identifier ?? ''}`
        if (!this.#badEntries.has(id)) this.#log?.warn({ err: error, uid: entry.uid }, 'fastify-traffik: a stored override is not valid here; it is left out')
        this.#badEntries.add(id)
        continue
      }
      let target = byUid.get(entry.uid)
      if (target === undefined) {
        target = { throttle: undefined, identifiers: new Map(), expiresAt: undefined }
        byUid.set(entry.uid, target)
      }
      if (entry.identifier === undefined) target.throttle = compiled
      else target.identifiers.set(entry.identifier, compiled)
      if (entry.expiresAt !== undefined) target.expiresAt = Math.min(target.expiresAt ?? Infinity, entry.expiresAt)
    }
    this.#applied = new Map([...byUid].map(([uid, o]) => [uid, Object.freeze(o)]))
    this.#appliedRaw = raw
    for (const throttle of this.#throttles()) this.adopt(throttle)
  }

  #parse (raw: string | null): OverrideEntry[] {
    if (raw === null) return []
    let record: StoredRecord
    try {
      record = JSON.parse(raw) as StoredRecord
    } catch {
      throw new BackendError(this.#backend.name, `the overrides record '${this.#key}' is not JSON; clear it with fastify.throttle.overrides.clear()`)
    }
    if (record === null || typeof record !== 'object' || record.v !== 1 || !Array.isArray(record.entries)) {
      throw new BackendError(this.#backend.name, `the overrides record '${this.#key}' has an unknown shape; clear it with fastify.throttle.overrides.clear()`)
    }
    return record.entries
  }

  /**
   * Read, change and write the record under the backend's lock, then apply it here at once.
   * `replaceUnreadable`: a record that cannot be read is replaced (`clear()` starts over); any
   * other change refuses to overwrite it.
   */
  async #update (change: (entries: OverrideEntry[]) => OverrideEntry[], replaceUnreadable = false): Promise<void> {
    const lock = this.#backend.getLock(`${this.#key}:lock`, LOCK_TTL_MS)
    if (!await lock.acquire({ timeoutMs: LOCK_TTL_MS })) {
      throw new BackendError(this.#backend.name, `could not take the overrides lock '${this.#key}:lock' within ${LOCK_TTL_MS} ms`)
    }
    let raw: string | null
    try {
      const stored = await this.#backend.get(this.#key)
      let current: OverrideEntry[]
      try {
        current = live(this.#parse(stored))
      } catch (error) {
        if (!replaceUnreadable) throw error
        current = []
      }
      const entries = change(current)
      raw = entries.length === 0 ? null : JSON.stringify({ v: 1, entries } satisfies StoredRecord)
      if (this.#redis?.overridesInScript === true) {
        // The record and the hash the decision scripts read change together, in one script.
        await this.#redis.writeOverrides(this.#key, raw, this.#fieldsKey, fieldsOf(entries))
      } else if (raw === null) {
        await this.#backend.delete(this.#key)
      } else {
        await this.#backend.set(this.#key, raw)
      }
    } finally {
      await lock.release()
    }
    this.#apply(raw)
  }
}

const IDENTIFIER_FIELD = 'i:'

/** The hash field of a whole throttle's override; an identifier's is `i:` and its storage key. */
function throttleField (uid: string): string {
  return `t:${uid}`
}

/**
 * The overrides as the decision scripts read them: one field per target, its value
 * `limit,windowMs,cost,disabled,shadow,expiresAt` (empty: not set; limit -1: unlimited), so no
 * rate string is parsed in Lua. An entry this version cannot apply is left out, as it is by the reads.
 */
function fieldsOf (entries: readonly OverrideEntry[]): Map<string, string> {
  const fields = new Map<string, string>()
  for (const entry of entries) {
    let compiled: CompiledOverride
    try {
      compiled = compileOverride(entry.values, entry.identifier !== undefined)
    } catch {
      continue
    }
    const { rate, cost, disabled, shadow } = compiled
    const limit = rate === undefined ? '' : rate.unlimited ? '-1' : String(rate.limit)
    const windowMs = rate === undefined || rate.unlimited ? '' : String(rate.windowMs)
    const flag = (value: boolean | undefined): string => value === undefined ? '' : value ? '1' : '0'
    const field = entry.identifier === undefined ? throttleField(entry.uid) : `${IDENTIFIER_FIELD}${entry.uid}:{${boundIdentifier(entry.identifier)}}`
    fields.set(field, [limit, windowMs, cost ?? '', flag(disabled), flag(shadow), entry.expiresAt ?? ''].join(','))
  }
  return fields
}

function checkTarget (uid: unknown, identifier: unknown): void {
  if (typeof uid !== 'string' || uid.length === 0) invalidOption('uid', 'a throttle uid (a non-empty string)', uid)
  if (identifier !== undefined && (typeof identifier !== 'string' || identifier.length === 0)) invalidOption('identifier', 'a non-empty string', identifier)
}

function sameTarget (entry: OverrideEntry, uid: string, identifier: string | undefined): boolean {
  return entry.uid === uid && entry.identifier === identifier
}

function live (entries: OverrideEntry[]): OverrideEntry[] {
  const now = Date.now()
  return entries.filter((e) => e.expiresAt === undefined || e.expiresAt > now)
}
