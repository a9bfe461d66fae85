/**
 * `reset()` and `clearPrefix()` without enumerating keys: every data key carries a generation,
 * `<namespace>:<generation>:<logical key>`. One small item, `<namespace>:generation`, holds the
 * namespace's generation and one generation per cleared prefix (JSON). Resetting writes a fresh
 * generation (O(1)); clearing a prefix adds or renews that prefix's entry with a CAS write. Keys
 * of an old generation are never read again and expire on their own TTL.
 *
 * Each process caches the item and re-reads it in the background once it is older than
 * `refreshMs`, so a decision costs no extra round trip; another process sees a reset within
 * `refreshMs` (with `refreshMs: 0` it reads the item on every decision: always current, one more
 * round trip each).
 */
import { randomBytes } from 'node:crypto'
import { UnsupportedError } from '../errors.js'
import { MemcachedError, type MemcachedProtocol } from './memcached-protocol.js'

/** Cleared prefixes one namespace can hold until the next `reset()`. */
export const MAX_CLEARED_PREFIXES = 1000

/** Window lengths of counter strategies remembered per namespace (for `delete`). */
export const MAX_COUNTER_WINDOWS = 64

/** The generations in force, and what `delete` needs to find a key's window counters. */
export interface Generation {
  /** The namespace's generation. */
  readonly token: string
  /** `[prefix, token]` of every cleared prefix, sorted by prefix. */
  readonly prefixes: ReadonlyArray<readonly [string, string]>
  /** Window lengths (ms) counter strategies have used in this namespace. */
  readonly windows: readonly number[]
}

/** A fresh random generation token (8 URL-safe characters). */
export function newToken (): string {
  return randomBytes(6).toString('base64url')
}

/** The generation part of a logical key's storage key: the namespace's, plus every cleared prefix's it starts with. */
export function generationOf (generation: Generation, logicalKey: string): string {
  let result = generation.token
  for (const [prefix, token] of generation.prefixes) {
    if (logicalKey.startsWith(prefix)) result += '.' + token
  }
  return result
}

export function encodeGeneration (generation: Generation): string {
  return JSON.stringify({ g: generation.token, p: Object.fromEntries(generation.prefixes), w: generation.windows })
}

/** Undefined for anything that is not a generation item. */
export function decodeGeneration (raw: string): Generation | undefined {
  try {
    const parsed = JSON.parse(raw) as { g?: unknown, p?: unknown, w?: unknown }
    if (typeof parsed.g !== 'string' || parsed.g.length === 0) return undefined
    const prefixes: Array<[string, string]> = []
    if (parsed.p !== null && typeof parsed.p === 'object') {
      for (const [prefix, token] of Object.entries(parsed.p as Record<string, unknown>)) {
        if (typeof token === 'string') prefixes.push([prefix, token])
      }
    }
    const windows = Array.isArray(parsed.w) ? parsed.w.filter((w): w is number => Number.isSafeInteger(w) && w > 0) : []
    return { token: parsed.g, prefixes: sortedPrefixes(prefixes), windows }
  } catch {
    return undefined
  }
}

function sortedPrefixes (prefixes: Array<[string, string]>): Array<[string, string]> {
  return prefixes.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

export class GenerationCache {
  readonly #protocol: () => MemcachedProtocol | Promise<MemcachedProtocol>
  readonly #key: string
  readonly #refreshMs: number
  #current: Generation | undefined
  #loadedAt = 0
  #loading: Promise<Generation> | undefined
  /** Bumped by every local write, so a read that started before it cannot bring back what it replaced. */
  #epoch = 0
  readonly #registering = new Set<number>()

  constructor (protocol: () => MemcachedProtocol | Promise<MemcachedProtocol>, key: string, refreshMs: number) {
    this.#protocol = protocol
    this.#key = key
    this.#refreshMs = refreshMs
  }

  /**
   * The generation to use now: the cached one while it is younger than `refreshMs`; a stale one
   * is still used while a background read refreshes it; with nothing cached, a read is awaited.
   */
  current (): Generation | Promise<Generation> {
    const cached = this.#current
    if (cached === undefined || this.#refreshMs === 0) return this.load()
    if (performance.now() - this.#loadedAt >= this.#refreshMs && this.#loading === undefined) {
      // A failed refresh keeps the cached generation; the next decision tries again.
      this.load().catch(() => {})
    }
    return cached
  }

  /** Reads the generation item, creating it when missing (concurrent loads share one read). */
  load (): Promise<Generation> {
    const epoch = this.#epoch
    this.#loading ??= this.#read().then((generation) => {
      this.#loading = undefined
      if (epoch === this.#epoch) this.#remember(generation)
      return this.#current ?? generation
    }, (error: unknown) => {
      this.#loading = undefined
      throw error
    })
    return this.#loading
  }

  /** Starts a new namespace generation: every key written before is unreachable from now on. */
  async reset (): Promise<void> {
    const protocol = await this.#protocol()
    const generation: Generation = { token: newToken(), prefixes: [], windows: this.#current?.windows ?? [] }
    await protocol.store('set', this.#key, encodeGeneration(generation), 0)
    this.#epoch++
    this.#remember(generation)
  }

  /** Gives `prefix` a new generation: keys starting with it are unreachable from now on. */
  async clearPrefix (prefix: string): Promise<void> {
    await this.#update((current) => {
      const prefixes = current.prefixes.filter(([p]) => p !== prefix) as Array<[string, string]>
      if (prefixes.length >= MAX_CLEARED_PREFIXES) {
        throw new UnsupportedError(
          `MemcachedBackend keeps at most ${MAX_CLEARED_PREFIXES} cleared prefixes per namespace; call reset() to clear the whole namespace instead`
        )
      }
      prefixes.push([prefix, newToken()])
      return { ...current, prefixes: sortedPrefixes(prefixes) }
    })
  }

  /**
   * Remembers a counter strategy's window length in the item (once per length and namespace,
   * in the background), so that `delete(key)` in any process can find that key's window counters.
   */
  registerWindow (windowMs: number): void {
    const current = this.#current
    if (current === undefined || current.windows.includes(windowMs) || this.#registering.has(windowMs)) return
    if (current.windows.length >= MAX_COUNTER_WINDOWS) return
    this.#registering.add(windowMs)
    this.#update((generation) => generation.windows.includes(windowMs) || generation.windows.length >= MAX_COUNTER_WINDOWS
      ? undefined
      : { ...generation, windows: [...generation.windows, windowMs] }
    ).catch(() => {}).finally(() => { this.#registering.delete(windowMs) })
  }

  /** A CAS read-modify-write of the item; `change` returns undefined to leave it as it is. */
  async #update (change: (current: Generation) => Generation | undefined): Promise<void> {
    const protocol = await this.#protocol()
    for (let attempt = 0; ; attempt++) {
      if (attempt >= 50) throw new MemcachedError('the generation item keeps changing')
      const stored = await protocol.get(this.#key)
      const current = (stored === null ? undefined : decodeGeneration(stored.value)) ?? { token: newToken(), prefixes: [], windows: [] }
      const next = change(current)
      if (next === undefined) {
        this.#remember(current)
        return
      }
      const written = stored === null
        ? await protocol.store('add', this.#key, encodeGeneration(next), 0)
        : await protocol.store('set', this.#key, encodeGeneration(next), 0, stored.cas)
      if (written !== null) {
        this.#epoch++
        this.#remember(next)
        return
      }
      // Another process changed the item in between: read it again.
    }
  }

  #remember (generation: Generation): void {
    this.#current = generation
    this.#loadedAt = performance.now()
  }

  async #read (): Promise<Generation> {
    const protocol = await this.#protocol()
    for (let attempt = 0; ; attempt++) {
      const stored = await protocol.get(this.#key)
      if (stored !== null) {
        const decoded = decodeGeneration(stored.value)
        if (decoded !== undefined) return decoded
        // Not ours (or damaged): replace it, unless someone else does first.
        const fresh: Generation = { token: newToken(), prefixes: [], windows: [] }
        if (await protocol.store('set', this.#key, encodeGeneration(fresh), 0, stored.cas) !== null) return fresh
      } else {
        // First use of the namespace (or the item was lost): the first process to add it wins.
        const fresh: Generation = { token: newToken(), prefixes: [], windows: [] }
        if (await protocol.store('add', this.#key, encodeGeneration(fresh), 0) !== null) return fresh
      }
      if (attempt >= 10) throw new MemcachedError('the generation item keeps changing')
    }
  }
}
