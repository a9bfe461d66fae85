/**
 * Named locks on Redis for custom strategies and user code: `SET key token NX PX ttl` with a
 * random token, released by a compare-and-delete script, so a holder never deletes a lock that
 * expired and was taken by someone else. Every lock has a TTL, so a crashed holder frees it.
 *
 * With several independent instances (Redlock) the lock is taken on each and held when a
 * majority granted it within its TTL (minus a clock drift allowance); otherwise it is released
 * everywhere at once.
 */
import { randomBytes } from 'node:crypto'
import type { BackendLock } from '../../types/backend.js'
import { withinDeadline } from './backend-guard.js'
import { acquireWithBackoff } from './lock-backoff.js'
import type { RedisDriver } from './redis-driver.js'
import type { RedisScript } from './redis-scripts.js'

export interface RedisLockSettings {
  /** The instances the lock is taken on: one for a plain lock, several for Redlock (resolved when used). */
  readonly clients: () => Promise<readonly RedisDriver[]>
  /** The namespaced key of the lock. */
  readonly key: string
  readonly ttlMs: number
  /** Deadline of each command in ms (0: none). */
  readonly callTimeoutMs: number
  /** How long a blocking acquire retries by default. */
  readonly defaultWaitMs: number
  readonly releaseScript: RedisScript
  /** Wraps driver errors for callers. */
  readonly wrapError: (operation: string, error: unknown) => Error
}

/** Redlock's allowance for clock drift between instances: 1 % of the TTL plus 2 ms. */
function driftMs (ttlMs: number): number {
  return Math.floor(ttlMs * 0.01) + 2
}

export class RedisLock implements BackendLock {
  readonly #settings: RedisLockSettings
  #token: string | undefined

  constructor (settings: RedisLockSettings) {
    this.#settings = settings
  }

  async acquire (options: { blocking?: boolean, timeoutMs?: number } = {}): Promise<boolean> {
    const { blocking = true, timeoutMs = this.#settings.defaultWaitMs } = options
    // Every try is a round trip (several with Redlock): start slower than in-process locks.
    return await acquireWithBackoff(async () => await this.#tryOnce(), { blocking, timeoutMs, firstPauseMs: 5, maxPauseMs: 100 })
  }

  async release (): Promise<void> {
    const token = this.#token
    if (token === undefined) return
    this.#token = undefined
    await this.#releaseEverywhere(token)
  }

  async #tryOnce (): Promise<boolean> {
    const { key, ttlMs } = this.#settings
    const clients = await this.#clients('lock.acquire')
    const token = randomBytes(16).toString('base64url')
    if (clients.length === 1) {
      let taken: boolean
      try {
        taken = await this.#bounded(clients[0]!.set(key, token, { ttlMs, onlyIfAbsent: true }))
      } catch (error) {
        throw this.#settings.wrapError('lock.acquire', error)
      }
      if (!taken) return false
      this.#token = token
      return true
    }
    const started = Date.now()
    const answers = await Promise.allSettled(clients.map(async (client) => await this.#bounded(client.set(key, token, { ttlMs, onlyIfAbsent: true }))))
    const granted = answers.filter((a) => a.status === 'fulfilled' && a.value).length
    const validityMs = ttlMs - (Date.now() - started) - driftMs(ttlMs)
    if (granted >= Math.floor(clients.length / 2) + 1 && validityMs > 0) {
      this.#token = token
      return true
    }
    await this.#releaseEverywhere(token).catch(() => {})
    return false
  }

  /** The clients the lock lives on (one, or the Redlock instances); failures surface as BackendError. */
  async #clients (operation: string): Promise<readonly RedisDriver[]> {
    try {
      return await this.#settings.clients()
    } catch (error) {
      throw this.#settings.wrapError(operation, error)
    }
  }

  async #releaseEverywhere (token: string): Promise<void> {
    const { key, releaseScript } = this.#settings
    const clients = await this.#clients('lock.release')
    const results = await Promise.allSettled(clients.map(async (client) => await this.#bounded(releaseScript.run(client, [key], [token]))))
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    // A lock that expired is not an error; an instance that cannot be reached is, unless others released it.
    if (failures.length === clients.length) throw this.#settings.wrapError('lock.release', failures[0]!.reason)
  }

  async #bounded<T> (pending: Promise<T>): Promise<T> {
    return await withinDeadline(pending, this.#settings.callTimeoutMs, 'RedisBackend')
  }
}
