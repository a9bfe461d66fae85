/**
 * InMemoryBackend: counters in this process, decided synchronously (no await between read and
 * write, hence atomic without locks). It cannot fail, so it has no guard (`driverError = null`)
 * and checks that it is open itself.
 *
 * Keys live in a slab (in-memory-slab.ts): no object and no timer per key, about 140 bytes per key
 * at a million keys, key strings included (44 of them the slab's own columns and index).
 * Bounded by `maxKeys`: at the bound the least recently used key is evicted; with
 * `protectLimited` a key that is currently rejecting requests is skipped by eviction, so a flood
 * of new keys cannot free a limited client.
 * Specification: docs/backends/in-memory.md.
 */
import type { Decision } from '../../types/decision.js'
import { systemClock, type Clock } from '../clock.js'
import { untouchedDecision } from '../decision.js'
import { invalidOption } from '../errors.js'
import { InMemorySlab, NO_SLOT } from './in-memory-slab.js'
import { acquireWithBackoff } from './lock-backoff.js'
import { commits, stepAll, stepOne, writes } from './step-all.js'
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

export class InMemoryBackend extends ThrottleBackend {
  static override driverError = null

  readonly clock: Clock
  readonly #sweepIntervalMs: number
  readonly #slab: InMemorySlab
  #sweepTimer: NodeJS.Timeout | undefined

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
    this.#sweepIntervalMs = sweepIntervalMs
    this.clock = clock
    this.#slab = new InMemorySlab(maxKeys, protectLimited)
  }

  /** Most keys held at once (see InMemoryBackendOptions). */
  get maxKeys (): number {
    return this.#slab.maxKeys
  }

  /** Whether eviction skips limited keys (see InMemoryBackendOptions). */
  get protectLimited (): boolean {
    return this.#slab.protectLimited
  }

  /** Number of keys currently held (expired ones not yet swept included). */
  get size (): number {
    return this.#slab.size
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
    return this.#evaluateAll(ops, now, mode)
  }

  /** The hot path: one limit, no closure and no array beyond the state and the result. */
  #evaluateOne (op: EvaluateOp, now: number, mode: EvaluateMode): Decision {
    const slot = this.#slab.lookup(op.key, now)
    const result = stepOne(op, slot === NO_SLOT ? undefined : this.#slab.read(slot), now, mode)
    if (result === null) return untouchedDecision(op.limit)
    if (writes(mode, commits(mode, result.decision.allowed), result)) {
      this.#slab.store(op.key, slot, result.state, now + result.ttlMs, now)
      // A kept rejection (an offence recorded) is still a limited key.
      if (!result.decision.allowed) this.#slab.markLimited(this.#slab.lookup(op.key, now))
    } else if (mode === 'hit') {
      this.#slab.markLimited(slot)
    }
    return result.decision
  }

  /**
   * Several limits. Every key is given its slot before any is written, and making room for one
   * key never evicts another key of the call (which would then be written into a slot its
   * neighbour owns).
   */
  #evaluateAll (ops: readonly EvaluateOp[], now: number, mode: EvaluateMode): Decision[] {
    const slab = this.#slab
    const slots = ops.map((op) => slab.lookup(op.key, now))
    const { results, decisions, commit } = stepAll(ops, slots.map((slot) => slot === NO_SLOT ? undefined : slab.read(slot)), now, mode)
    const written = results.map((result) => result !== null && writes(mode, commit, result))
    for (let i = 0; i < ops.length; i++) {
      if (slots[i] !== NO_SLOT || !written[i] || results[i]!.state === null) continue
      // The same key twice in one call shares the slot its first op got.
      const slot = slab.lookup(ops[i]!.key, now)
      slots[i] = slot !== NO_SLOT ? slot : slab.allocate(ops[i]!.key, now, slots)
    }
    for (let i = 0; i < ops.length; i++) {
      const result = results[i]
      if (result == null || !written[i]) continue
      if (result.state === null) slab.remove(slots[i]!)
      else slab.write(slots[i]!, result.state, now + result.ttlMs)
    }
    if (!commit && mode === 'hit') results.forEach((result, i) => { if (result !== null && !result.decision.allowed && slots[i] !== NO_SLOT) slab.markLimited(slots[i]!) })
    return decisions
  }

  // ---- storage primitives ----

  override async get (key: string): Promise<string | null> {
    return this.getSync(key)
  }

  /** Synchronous `get`, for code that runs on this backend only. */
  getSync (key: string): string | null {
    this.assertOpen()
    const slot = this.#slab.lookup(key, this.clock.now())
    return slot === NO_SLOT ? null : this.#slab.readText(slot)
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    this.assertOpen()
    if (typeof value !== 'string') invalidOption('value', 'a string', value)
    const now = this.clock.now()
    this.#slab.store(key, this.#slab.lookup(key, now), value, expiryOf(now, ttlMs), now)
  }

  override async delete (key: string): Promise<boolean> {
    this.assertOpen()
    const now = this.clock.now()
    // An expired key is dropped by the lookup and reported as absent.
    const slot = this.#slab.lookup(key, now)
    if (slot === NO_SLOT) return false
    this.#slab.remove(slot)
    return true
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
    const slot = this.#slab.lookup(key, now)
    if (slot === NO_SLOT) return false
    this.#slab.setExpiry(slot, expiryOf(now, ttlMs))
    return true
  }

  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    return keys.map((key) => this.getSync(key))
  }

  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    this.assertOpen()
    const now = this.clock.now()
    for (const [key, value] of entries) this.#slab.store(key, this.#slab.lookup(key, now), value, expiryOf(now, ttlMs), now)
  }

  override getLock (name: string, ttlMs: number): BackendLock {
    return new InMemoryLock(this, name, ttlMs)
  }

  /** Takes the lock key if absent or expired. Synchronous, hence atomic. */
  tryLock (name: string, token: string, ttlMs: number): boolean {
    const now = this.clock.now()
    if (this.#slab.lookup(name, now) !== NO_SLOT) return false
    this.#slab.store(name, NO_SLOT, token, now + ttlMs, now)
    return true
  }

  /** Releases the lock key only if it still holds `token`. */
  unlock (name: string, token: string): void {
    const slot = this.#slab.lookup(name, this.clock.now())
    if (slot !== NO_SLOT && this.#slab.readText(slot) === token) this.#slab.remove(slot)
  }

  override async reset (): Promise<void> {
    this.clear()
  }

  override async clearPrefix (prefix: string): Promise<number> {
    return this.#slab.removePrefix(prefix)
  }

  /** Drops every key at once. */
  clear (): void {
    this.#slab.clear()
  }

  /** Removes every expired key now. Runs on a timer; callable directly. */
  sweep (): number {
    return this.#slab.sweep(this.clock.now())
  }

  #add (key: string, amount: number, ttlMs: number | undefined): number {
    this.assertOpen()
    if (!Number.isSafeInteger(amount)) invalidOption('amount', 'an integer', amount)
    const now = this.clock.now()
    const slot = this.#slab.lookup(key, now)
    if (slot === NO_SLOT) {
      this.#slab.store(key, NO_SLOT, [amount], expiryOf(now, ttlMs), now)
      return amount
    }
    const current = this.#slab.read(slot)
    const value = (current.length === 1 ? current[0]! : 0) + amount
    this.#slab.write(slot, [value], this.#slab.expiresAt(slot))
    return value
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

function expiryOf (now: number, ttlMs: number | undefined): number {
  if (ttlMs === undefined) return Infinity
  if (typeof ttlMs !== 'number' || !(ttlMs > 0)) invalidOption('ttlMs', 'a positive number of milliseconds', ttlMs)
  return now + ttlMs
}
