/**
 * InMemoryBackend: counters in this process, decided synchronously (no await between read and
 * write, hence atomic without locks).
 *
 * Storage is a slab: a Map from key to slot index, and typed-array columns for the expiry, up to
 * three state numbers and the LRU links. No object and no timer per key; about 110 bytes per key.
 * Bounded by `maxKeys`: at the bound the least recently used key is evicted; with
 * `protectLimited` a key that is currently rejecting requests is skipped by eviction, so a flood
 * of new keys cannot free a limited client.
 */
import type { Decision } from '../../types/decision.js'
import type { StrategyState } from '../../types/strategy.js'
import { systemClock, type Clock } from '../clock.js'
import { untouchedDecision } from '../decision.js'
import { invalidOption } from '../errors.js'
import { acquireWithBackoff } from './lock-backoff.js'
import { commits, stepAll, stepOne } from './step-all.js'
import { ThrottleBackend, assertKnownBackendOptions, type BackendLock, type EvaluateMode, type EvaluateOp, type ThrottleBackendOptions } from './throttle-backend.js'

export interface InMemoryBackendOptions extends ThrottleBackendOptions {
  /**
   * Most keys held at once. At the bound the least recently used key is evicted (see `protectLimited`).
   * Below it nothing is ever evicted before it expires.
   * @default 1_000_000
   */
  maxKeys?: number
  /**
   * When evicting, skip keys whose last decision was a rejection and that have not expired yet,
   * so a flood of new identifiers cannot reset a client that is being limited. If every candidate
   * is protected, the least recently used key goes anyway (memory stays bounded).
   * @default true
   */
  protectLimited?: boolean
  /**
   * How often expired keys are swept, in ms. The sweep timer is `unref()`'d. Expired keys are also
   * dropped lazily when read.
   * @default 60_000
   */
  sweepIntervalMs?: number
  /**
   * Time source; inject a ManualClock in tests.
   * @default systemClock (Date.now)
   */
  clock?: Clock
}

const NONE = -1
/** Marks a slot whose value lives in `objects` (a string, or a state longer than three numbers). */
const OBJECT_STATE = 255
/** How many least recently used slots eviction inspects for an unprotected one. */
const EVICTION_SCAN = 16

export class InMemoryBackend extends ThrottleBackend {
  static override driverError = null

  readonly maxKeys: number
  readonly protectLimited: boolean
  readonly clock: Clock
  readonly #sweepIntervalMs: number
  #sweepTimer: NodeJS.Timeout | undefined

  #index = new Map<string, number>()
  #capacity = 0
  #keys: Array<string | undefined> = []
  #objects: Array<unknown> = []
  #expires = new Float64Array(0)
  #s0 = new Float64Array(0)
  #s1 = new Float64Array(0)
  #s2 = new Float64Array(0)
  #length = new Uint8Array(0)
  #limited = new Uint8Array(0)
  #prev = new Int32Array(0)
  #next = new Int32Array(0)
  #head = NONE // most recently used
  #tail = NONE // least recently used
  #free: number[] = []
  #used = 0 // slots ever handed out (free ones included)

  constructor (options: InMemoryBackendOptions = {}) {
    super(options, { persistent: false, timeoutMs: 0 })
    if (new.target === InMemoryBackend) assertKnownBackendOptions('InMemoryBackend', options, ['maxKeys', 'protectLimited', 'sweepIntervalMs', 'clock'])
    const { maxKeys = 1_000_000, protectLimited = true, sweepIntervalMs = 60_000, clock = systemClock } = options
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) invalidOption('maxKeys', 'a positive integer', maxKeys)
    if (typeof protectLimited !== 'boolean') invalidOption('protectLimited', 'a boolean', protectLimited)
    if (typeof sweepIntervalMs !== 'number' || !(sweepIntervalMs >= 10)) {
      invalidOption('sweepIntervalMs', 'a number of milliseconds >= 10', sweepIntervalMs)
    }
    if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') {
      invalidOption('clock', 'an object with a now() method', clock)
    }
    this.maxKeys = maxKeys
    this.protectLimited = protectLimited
    this.#sweepIntervalMs = sweepIntervalMs
    this.clock = clock
    this.#grow(Math.min(1024, maxKeys))
  }

  /** Number of keys currently held (expired ones not yet swept included). */
  get size (): number {
    return this.#index.size
  }

  /** Whether the sweep timer runs (between `initialize()` and `close()`). */
  get sweeping (): boolean {
    return this.#sweepTimer !== undefined
  }

  protected override now (): number {
    return this.clock.now()
  }

  protected override async onInitialize (): Promise<void> {
    if (this.#sweepTimer !== undefined) return
    this.#sweepTimer = setInterval(() => { this.sweep() }, this.#sweepIntervalMs)
    this.#sweepTimer.unref()
  }

  protected override async onClose (): Promise<void> {
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer)
    this.#sweepTimer = undefined
  }

  // ---- the atomic entry point: synchronous ----

  override evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Decision[] {
    this.assertOpen()
    const now = this.clock.now()
    if (ops.length === 1) return [this.#evaluateOne(ops[0]!, now, mode)]
    const slots = ops.map((op) => this.#lookup(op.key, now))
    const { results, decisions, commit } = stepAll(ops, slots.map((slot) => slot === NONE ? undefined : this.#read(slot)), now, mode)
    for (let i = 0; i < ops.length; i++) {
      const result = results[i]
      if (result == null) continue
      if (commit) this.#store(ops[i]!.key, slots[i]!, result.state, now + result.ttlMs)
      else if (mode === 'hit' && !result.decision.allowed) this.#markLimited(slots[i]!)
    }
    return decisions
  }

  /** The hot path: one limit, no closure and no array beyond the state and the result. */
  #evaluateOne (op: EvaluateOp, now: number, mode: EvaluateMode): Decision {
    const slot = this.#lookup(op.key, now)
    const result = stepOne(op, slot === NONE ? undefined : this.#read(slot), now, mode)
    if (result === null) return untouchedDecision(op.limit)
    if (commits(mode, result.decision.allowed)) this.#store(op.key, slot, result.state, now + result.ttlMs)
    else if (mode === 'hit') this.#markLimited(slot)
    return result.decision
  }

  // ---- storage primitives ----

  override async get (key: string): Promise<string | null> {
    return this.getSync(key)
  }

  /** Synchronous `get`, for code that runs on this backend only. */
  getSync (key: string): string | null {
    this.assertOpen()
    const slot = this.#lookup(key, this.clock.now())
    if (slot === NONE) return null
    const value = this.#length[slot] === OBJECT_STATE ? this.#objects[slot] : this.#read(slot)
    return typeof value === 'string' ? value : (value as StrategyState).join(',')
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    this.assertOpen()
    if (typeof value !== 'string') invalidOption('value', 'a string', value)
    const now = this.clock.now()
    this.#store(key, this.#lookup(key, now), value, expiryOf(now, ttlMs))
  }

  override async delete (key: string): Promise<boolean> {
    this.assertOpen()
    const slot = this.#index.get(key)
    if (slot === undefined) return false
    const live = this.#expires[slot]! > this.clock.now()
    this.#remove(slot)
    return live
  }

  override async increment (key: string, amount = 1): Promise<number> {
    return this.#add(key, amount, undefined)
  }

  override async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> {
    return this.#add(key, amount, ttlMs)
  }

  override async expire (key: string, ttlMs: number): Promise<boolean> {
    this.assertOpen()
    const now = this.clock.now()
    const slot = this.#lookup(key, now)
    if (slot === NONE) return false
    this.#expires[slot] = expiryOf(now, ttlMs)
    return true
  }

  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    return keys.map((key) => this.getSync(key))
  }

  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    this.assertOpen()
    const now = this.clock.now()
    for (const [key, value] of entries) this.#store(key, this.#lookup(key, now), value, expiryOf(now, ttlMs))
  }

  override getLock (name: string, ttlMs: number): BackendLock {
    return new InMemoryLock(this, `${name}`, ttlMs)
  }

  /** Takes the lock key if absent or expired. Synchronous, hence atomic. */
  tryLock (name: string, token: string, ttlMs: number): boolean {
    const now = this.clock.now()
    if (this.#lookup(name, now) !== NONE) return false
    this.#store(name, NONE, token, now + ttlMs)
    return true
  }

  /** Releases the lock key only if it still holds `token`. */
  unlock (name: string, token: string): void {
    const slot = this.#lookup(name, this.clock.now())
    if (slot !== NONE && this.#objects[slot] === token) this.#remove(slot)
  }

  override async reset (): Promise<void> {
    this.clear()
  }

  override async clearPrefix (prefix: string): Promise<number> {
    let removed = 0
    for (const [key, slot] of this.#index) {
      if (key.startsWith(prefix)) {
        this.#remove(slot)
        removed++
      }
    }
    return removed
  }

  /** Drops every key at once. */
  clear (): void {
    this.#index = new Map()
    this.#capacity = 0
    this.#keys = []
    this.#objects = []
    this.#free = []
    this.#used = 0
    this.#head = NONE
    this.#tail = NONE
    this.#grow(Math.min(1024, this.maxKeys))
  }

  /** Removes every expired key now. Runs on a timer; callable directly. */
  sweep (): number {
    const now = this.clock.now()
    let removed = 0
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.#keys[slot] !== undefined && this.#expires[slot]! <= now) {
        this.#remove(slot)
        removed++
      }
    }
    return removed
  }

  // ---- slab internals ----

  /** Slot of a live key, refreshing its recency; NONE when absent or expired. */
  #lookup (key: string, now: number): number {
    const slot = this.#index.get(key)
    if (slot === undefined) return NONE
    if (this.#expires[slot]! <= now) {
      this.#remove(slot)
      return NONE
    }
    this.#touch(slot)
    return slot
  }

  #read (slot: number): StrategyState {
    const length = this.#length[slot]!
    if (length === OBJECT_STATE) {
      const value = this.#objects[slot]
      return Array.isArray(value) ? value as StrategyState : numericState(value)
    }
    if (length === 2) return [this.#s0[slot]!, this.#s1[slot]!]
    if (length === 1) return [this.#s0[slot]!]
    if (length === 3) return [this.#s0[slot]!, this.#s1[slot]!, this.#s2[slot]!]
    return []
  }

  #store (key: string, slot: number, value: StrategyState | string | null, expiresAt: number): void {
    if (value === null) {
      if (slot !== NONE) this.#remove(slot)
      return
    }
    if (slot === NONE) slot = this.#allocate(key)
    this.#expires[slot] = expiresAt
    this.#limited[slot] = 0
    if (typeof value === 'string' || value.length > 3) {
      this.#length[slot] = OBJECT_STATE
      this.#objects[slot] = typeof value === 'string' ? value : value.slice()
      return
    }
    this.#objects[slot] = undefined
    this.#length[slot] = value.length
    if (value.length > 0) this.#s0[slot] = value[0]!
    if (value.length > 1) this.#s1[slot] = value[1]!
    if (value.length > 2) this.#s2[slot] = value[2]!
  }

  #add (key: string, amount: number, ttlMs: number | undefined): number {
    this.assertOpen()
    if (!Number.isSafeInteger(amount)) invalidOption('amount', 'an integer', amount)
    const now = this.clock.now()
    const slot = this.#lookup(key, now)
    if (slot === NONE) {
      this.#store(key, NONE, [amount], expiryOf(now, ttlMs))
      return amount
    }
    const current = this.#read(slot)
    const base = current.length === 1 ? current[0]! : 0
    const value = base + amount
    this.#store(key, slot, [value], this.#expires[slot]!)
    return value
  }

  #markLimited (slot: number): void {
    if (slot !== NONE) this.#limited[slot] = 1
  }

  #allocate (key: string): number {
    let slot: number
    if (this.#free.length > 0) {
      slot = this.#free.pop()!
    } else if (this.#used < this.#capacity) {
      slot = this.#used++
    } else if (this.#capacity < this.maxKeys) {
      this.#grow(Math.min(this.maxKeys, this.#capacity * 2))
      slot = this.#used++
    } else {
      this.#evict()
      slot = this.#free.pop()!
    }
    const stored = flatCopy(key)
    this.#keys[slot] = stored
    this.#index.set(stored, slot)
    this.#linkHead(slot)
    return slot
  }

  #evict (): void {
    const now = this.clock.now()
    let victim = this.#tail
    if (this.protectLimited) {
      let candidate = this.#tail
      for (let seen = 0; candidate !== NONE && seen < EVICTION_SCAN; seen++) {
        if (this.#limited[candidate] === 0 || this.#expires[candidate]! <= now) {
          victim = candidate
          break
        }
        candidate = this.#prev[candidate]!
      }
    }
    this.#remove(victim)
  }

  #remove (slot: number): void {
    const key = this.#keys[slot]
    if (key === undefined) return
    this.#index.delete(key)
    this.#keys[slot] = undefined
    this.#objects[slot] = undefined
    this.#unlink(slot)
    this.#free.push(slot)
  }

  #touch (slot: number): void {
    if (this.#head === slot) return
    this.#unlink(slot)
    this.#linkHead(slot)
  }

  #linkHead (slot: number): void {
    this.#prev[slot] = NONE
    this.#next[slot] = this.#head
    if (this.#head !== NONE) this.#prev[this.#head] = slot
    this.#head = slot
    if (this.#tail === NONE) this.#tail = slot
  }

  #unlink (slot: number): void {
    const prev = this.#prev[slot]!
    const next = this.#next[slot]!
    if (prev !== NONE) this.#next[prev] = next
    else if (this.#head === slot) this.#head = next
    if (next !== NONE) this.#prev[next] = prev
    else if (this.#tail === slot) this.#tail = prev
    this.#prev[slot] = NONE
    this.#next[slot] = NONE
  }

  #grow (capacity: number): void {
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity)
      next.set(old.subarray(0, Math.min(old.length, capacity)))
      return next
    }
    this.#expires = grow(this.#expires, (n) => new Float64Array(n))
    this.#s0 = grow(this.#s0, (n) => new Float64Array(n))
    this.#s1 = grow(this.#s1, (n) => new Float64Array(n))
    this.#s2 = grow(this.#s2, (n) => new Float64Array(n))
    this.#length = grow(this.#length, (n) => new Uint8Array(n))
    this.#limited = grow(this.#limited, (n) => new Uint8Array(n))
    this.#prev = grow(this.#prev, (n) => new Int32Array(n))
    this.#next = grow(this.#next, (n) => new Int32Array(n))
    this.#capacity = capacity
  }
}

class InMemoryLock implements BackendLock {
  readonly #token = `${process.pid}:${Math.random().toString(36).slice(2)}`
  readonly #backend: InMemoryBackend
  readonly #name: string
  readonly #ttlMs: number

  constructor (backend: InMemoryBackend, name: string, ttlMs: number) {
    this.#backend = backend
    this.#name = name
    this.#ttlMs = ttlMs
  }

  async acquire (options: { blocking?: boolean, timeoutMs?: number } = {}): Promise<boolean> {
    const { blocking = true, timeoutMs = 1000 } = options
    return await acquireWithBackoff(() => this.#backend.tryLock(this.#name, this.#token, this.#ttlMs), { blocking, timeoutMs })
  }

  async release (): Promise<void> {
    this.#backend.unlock(this.#name, this.#token)
  }
}

/**
 * Keys arrive as concatenations (`uid + identifier`), which V8 keeps as a tree of pieces that
 * costs about 50 bytes more per key than one flat string. Stored keys live long, so they are
 * copied flat once, when the key is first stored (a few hundred ns per new key; lookups are unchanged).
 */
function flatCopy (key: string): string {
  return JSON.parse(JSON.stringify(key)) as string
}

function expiryOf (now: number, ttlMs: number | undefined): number {
  if (ttlMs === undefined) return Infinity
  if (typeof ttlMs !== 'number' || !(ttlMs > 0)) invalidOption('ttlMs', 'a positive number of milliseconds', ttlMs)
  return now + ttlMs
}

function numericState (value: unknown): StrategyState {
  if (typeof value !== 'string') return []
  const number = Number(value)
  return Number.isFinite(number) && value.trim() !== '' ? [number] : []
}
