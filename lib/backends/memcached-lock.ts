/**
 * A named lock on memcached: `add` of a random token with a TTL (add succeeds for one holder
 * only), released by a token-checked delete (read the token with its CAS value, delete only that
 * exact item), so a holder whose lock expired never deletes the next holder's lock.
 */
import { randomBytes } from 'node:crypto'
import type { BackendLock } from '../../types/backend.js'
import { BackendError, BackendTimeoutError } from '../errors.js'
import { withinDeadline } from './backend-guard.js'
import { acquireWithBackoff } from './lock-backoff.js'
import { expirationOf } from './memcached-keys.js'
import { MemcachedHungError, type MemcachedProtocol } from './memcached-protocol.js'

/** Where a lock lives; resolved at acquisition, since the key depends on the generation in force. */
export interface LockTarget {
  protocol: MemcachedProtocol
  key: string
}

export class MemcachedLock implements BackendLock {
  readonly #token = randomBytes(12).toString('base64url')
  readonly #resolve: () => Promise<LockTarget>
  readonly #ttlMs: number
  readonly #timeoutMs: number
  readonly #name: string
  #held: LockTarget | undefined

  /**
   * @param resolve finds the connection and storage key
   * @param ttlMs how long a crashed holder can keep the lock (rounded up to whole seconds + 1)
   * @param timeoutMs the backend's deadline per request, also the default acquisition timeout (1000 ms when 0)
   */
  constructor (resolve: () => Promise<LockTarget>, ttlMs: number, timeoutMs: number, name: string) {
    this.#resolve = resolve
    this.#ttlMs = ttlMs
    this.#timeoutMs = timeoutMs
    this.#name = name
  }

  async acquire (options: { blocking?: boolean, timeoutMs?: number } = {}): Promise<boolean> {
    const { blocking = true, timeoutMs = this.#timeoutMs || 1000 } = options
    const target = await this.#call(this.#resolve())
    return await acquireWithBackoff(async () => {
      if (await this.#call(target.protocol.store('add', target.key, this.#token, expirationOf(this.#ttlMs))) === null) return false
      this.#held = target
      return true
    }, { blocking, timeoutMs })
  }

  async release (): Promise<void> {
    const target = this.#held
    if (target === undefined) return
    this.#held = undefined
    const stored = await this.#call(target.protocol.get(target.key))
    if (stored !== null && stored.value === this.#token) await this.#call(target.protocol.delete(target.key, stored.cas))
  }

  /** Every request has the backend's deadline, and fails as BackendError. */
  async #call<T> (pending: Promise<T>): Promise<T> {
    try {
      return await withinDeadline(pending, this.#timeoutMs, 'MemcachedBackend')
    } catch (error) {
      if (error instanceof BackendError) throw error
      if (error instanceof MemcachedHungError) throw new BackendTimeoutError('MemcachedBackend', this.#timeoutMs, { cause: error })
      throw new BackendError(`MemcachedBackend.getLock(${this.#name})`, (error as Error)?.message ?? String(error), { cause: error })
    }
  }
}
