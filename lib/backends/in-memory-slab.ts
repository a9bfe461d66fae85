/**
 * The storage of InMemoryBackend: keys with an expiry and a value, bounded by `maxKeys` with
 * least-recently-used eviction, and no object and no timer per key.
 *
 * A Map gives each key a slot; typed-array columns, indexed by slot, hold the expiry, up to three
 * state numbers inline, the LRU links and whether the key's last decision was a rejection. A
 * value that does not fit inline (a string, or a state of more than three numbers) is boxed in a
 * plain array column. Freed slots are reused before the columns grow.
 *
 * Times are whatever clock the caller reads: every method that needs the time takes `now`.
 */
import type { StrategyState } from '../../types/strategy.js'

/** No slot: the key is absent or expired. */
export const NO_SLOT = -1

/** `inlineCount` of a slot whose value is boxed (in `boxed`) instead of inline. */
const BOXED = 255
/** How many least recently used slots eviction inspects for one that is not protected. */
const EVICTION_SCAN = 16

export class InMemorySlab {
  /** Most keys held at once (a single call holding more keys than this may exceed it until its next allocation). */
  readonly maxKeys: number
  /** Whether eviction skips keys whose last decision was a rejection (see InMemoryBackendOptions). */
  readonly protectLimited: boolean

  #slotOf = new Map<string, number>()
  #keyOf: Array<string | undefined> = []
  #boxed: unknown[] = []
  #capacity = 0
  /** Slots ever handed out, free ones included; slots at or above it were never used. */
  #used = 0
  #free: number[] = []

  #expiresAt = new Float64Array(0)
  #firstNumber = new Float64Array(0)
  #secondNumber = new Float64Array(0)
  #thirdNumber = new Float64Array(0)
  /** How many state numbers the slot holds inline (0 to 3), or BOXED. */
  #inlineCount = new Uint8Array(0)
  /** 1 when the key's last decision was a rejection (cleared by the next write). */
  #limited = new Uint8Array(0)
  /** LRU links: towards the most recently used end, and towards the least recently used end. */
  #newer = new Int32Array(0)
  #older = new Int32Array(0)
  #mostRecent = NO_SLOT
  #leastRecent = NO_SLOT

  constructor (maxKeys: number, protectLimited: boolean) {
    this.maxKeys = maxKeys
    this.protectLimited = protectLimited
    this.#grow(Math.min(1024, maxKeys))
  }

  /** Keys held (expired ones not yet swept included). */
  get size (): number {
    return this.#slotOf.size
  }

  /** Slots the columns have room for. */
  get capacity (): number {
    return this.#capacity
  }

  /** The slot of a live key, made the most recently used; NO_SLOT when absent or expired (an expired key is dropped). */
  lookup (key: string, now: number): number {
    const slot = this.#slotOf.get(key)
    if (slot === undefined) return NO_SLOT
    if (this.#expiresAt[slot]! <= now) {
      this.remove(slot)
      return NO_SLOT
    }
    this.#touch(slot)
    return slot
  }

  /** Keys from the least to the most recently used (for tests and diagnostics). */
  keysByRecency (): string[] {
    const keys: string[] = []
    for (let slot = this.#leastRecent; slot !== NO_SLOT; slot = this.#newer[slot]!) keys.push(this.#keyOf[slot]!)
    return keys
  }

  /** The value of a slot as state numbers (a boxed string reads as one number, or none). */
  read (slot: number): StrategyState {
    const count = this.#inlineCount[slot]!
    if (count === BOXED) {
      const value = this.#boxed[slot]
      return Array.isArray(value) ? value as StrategyState : numericState(value)
    }
    if (count === 2) return [this.#firstNumber[slot]!, this.#secondNumber[slot]!]
    if (count === 1) return [this.#firstNumber[slot]!]
    if (count === 3) return [this.#firstNumber[slot]!, this.#secondNumber[slot]!, this.#thirdNumber[slot]!]
    return []
  }

  /** The value of a slot as a string (state numbers joined by commas). */
  readText (slot: number): string {
    const value = this.#inlineCount[slot] === BOXED ? this.#boxed[slot] : this.read(slot)
    return typeof value === 'string' ? value : (value as StrategyState).join(',')
  }

  expiresAt (slot: number): number {
    return this.#expiresAt[slot]!
  }

  setExpiry (slot: number, expiresAt: number): void {
    this.#expiresAt[slot] = expiresAt
  }

  /**
   * Stores `value` under `key`, whose slot is `slot` (NO_SLOT: a new key, allocated here). A null
   * value deletes the key. For one key at a time; see `allocate` for several.
   */
  store (key: string, slot: number, value: StrategyState | string | null, expiresAt: number, now: number): void {
    if (value === null) {
      if (slot !== NO_SLOT) this.remove(slot)
      return
    }
    this.write(slot === NO_SLOT ? this.allocate(key, now) : slot, value, expiresAt)
  }

  /** Writes the value and expiry of a slot the caller holds, and clears its rejection mark. */
  write (slot: number, value: StrategyState | string, expiresAt: number): void {
    this.#expiresAt[slot] = expiresAt
    this.#limited[slot] = 0
    if (typeof value === 'string' || value.length > 3) {
      this.#inlineCount[slot] = BOXED
      this.#boxed[slot] = typeof value === 'string' ? value : value.slice()
      return
    }
    this.#boxed[slot] = undefined
    this.#inlineCount[slot] = value.length
    if (value.length > 0) this.#firstNumber[slot] = value[0]!
    if (value.length > 1) this.#secondNumber[slot] = value[1]!
    if (value.length > 2) this.#thirdNumber[slot] = value[2]!
  }

  /**
   * A slot for a new key, the most recently used. At `maxKeys` the least recently used key goes
   * first (skipping protected ones, see `protectLimited`), but never one of `held`: a call storing
   * several keys passes the slots it already holds, so that making room for one of its keys never
   * takes another. When only held slots are left, the slab grows past `maxKeys` and shrinks back
   * on later allocations.
   */
  allocate (key: string, now: number, held?: readonly number[]): number {
    while (this.#slotOf.size >= this.maxKeys && this.#evictOne(now, held)) { /* until there is room */ }
    let slot: number
    if (this.#free.length > 0) {
      slot = this.#free.pop()!
    } else {
      if (this.#used === this.#capacity) this.#grow(this.#capacity < this.maxKeys ? Math.min(this.maxKeys, this.#capacity * 2) : this.#capacity + 1)
      slot = this.#used++
    }
    const stored = flatCopy(key)
    this.#keyOf[slot] = stored
    this.#slotOf.set(stored, slot)
    this.#linkMostRecent(slot)
    return slot
  }

  /** Marks the slot's key as being limited (its last decision was a rejection). */
  markLimited (slot: number): void {
    if (slot !== NO_SLOT) this.#limited[slot] = 1
  }

  /** Drops a slot's key and frees the slot. */
  remove (slot: number): void {
    const key = this.#keyOf[slot]
    if (key === undefined) return
    this.#slotOf.delete(key)
    this.#keyOf[slot] = undefined
    this.#boxed[slot] = undefined
    this.#unlink(slot)
    this.#free.push(slot)
  }

  /** Drops every key that starts with `prefix`; returns how many. */
  removePrefix (prefix: string): number {
    let removed = 0
    for (const [key, slot] of this.#slotOf) {
      if (key.startsWith(prefix)) {
        this.remove(slot)
        removed++
      }
    }
    return removed
  }

  /** Drops every expired key; returns how many. */
  sweep (now: number): number {
    let removed = 0
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.#keyOf[slot] !== undefined && this.#expiresAt[slot]! <= now) {
        this.remove(slot)
        removed++
      }
    }
    return removed
  }

  /** Drops every key at once and gives the memory back. */
  clear (): void {
    this.#slotOf = new Map()
    this.#keyOf = []
    this.#boxed = []
    this.#free = []
    this.#capacity = 0
    this.#used = 0
    this.#mostRecent = NO_SLOT
    this.#leastRecent = NO_SLOT
    this.#grow(Math.min(1024, this.maxKeys))
  }

  /** Frees one slot, not a held one; false when every slot is held. */
  #evictOne (now: number, held: readonly number[] | undefined): boolean {
    let leastRecentFree = NO_SLOT
    let inspected = 0
    for (let slot = this.#leastRecent; slot !== NO_SLOT && inspected < EVICTION_SCAN; slot = this.#newer[slot]!) {
      if (held !== undefined && held.includes(slot)) continue
      if (!this.protectLimited || this.#limited[slot] === 0 || this.#expiresAt[slot]! <= now) {
        this.remove(slot)
        return true
      }
      if (leastRecentFree === NO_SLOT) leastRecentFree = slot
      inspected++
    }
    // Every inspected key is being limited: the least recently used goes anyway (memory stays bounded).
    if (leastRecentFree === NO_SLOT) return false
    this.remove(leastRecentFree)
    return true
  }

  #touch (slot: number): void {
    if (this.#mostRecent === slot) return
    this.#unlink(slot)
    this.#linkMostRecent(slot)
  }

  #linkMostRecent (slot: number): void {
    this.#newer[slot] = NO_SLOT
    this.#older[slot] = this.#mostRecent
    if (this.#mostRecent !== NO_SLOT) this.#newer[this.#mostRecent] = slot
    this.#mostRecent = slot
    if (this.#leastRecent === NO_SLOT) this.#leastRecent = slot
  }

  #unlink (slot: number): void {
    const newer = this.#newer[slot]!
    const older = this.#older[slot]!
    if (newer !== NO_SLOT) this.#older[newer] = older
    else if (this.#mostRecent === slot) this.#mostRecent = older
    if (older !== NO_SLOT) this.#newer[older] = newer
    else if (this.#leastRecent === slot) this.#leastRecent = newer
    this.#newer[slot] = NO_SLOT
    this.#older[slot] = NO_SLOT
  }

  #grow (capacity: number): void {
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity)
      next.set(old.subarray(0, Math.min(old.length, capacity)))
      return next
    }
    this.#expiresAt = grow(this.#expiresAt, (n) => new Float64Array(n))
    this.#firstNumber = grow(this.#firstNumber, (n) => new Float64Array(n))
    this.#secondNumber = grow(this.#secondNumber, (n) => new Float64Array(n))
    this.#thirdNumber = grow(this.#thirdNumber, (n) => new Float64Array(n))
    this.#inlineCount = grow(this.#inlineCount, (n) => new Uint8Array(n))
    this.#limited = grow(this.#limited, (n) => new Uint8Array(n))
    this.#newer = grow(this.#newer, (n) => new Int32Array(n))
    this.#older = grow(this.#older, (n) => new Int32Array(n))
    this.#capacity = capacity
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

function numericState (value: unknown): StrategyState {
  if (typeof value !== 'string') return []
  const number = Number(value)
  return Number.isFinite(number) && value.trim() !== '' ? [number] : []
}
