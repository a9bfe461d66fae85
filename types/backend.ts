/**
 * The backend contract's value types: what a backend is asked to decide and how it reports.
 * A contract leaf: it imports nothing from `lib/`.
 */
import type { Strategy } from './strategy.js'

/** One limit to decide: a strategy applied to a key with a rate and a cost. */
export interface EvaluateOp {
  readonly strategy: Strategy
  /** The logical key, `<uid>:{<identifier>}`. Backends add their namespace. */
  readonly key: string
  readonly limit: number
  readonly windowMs: number
  readonly cost: number
  /**
   * Only for `'refund'`: when the charge being given back was made, in the backend's own clock
   * (the `decidedAt` of the decision that charged it). Strategies give back only what that charge
   * still holds: nothing for a window that has ended. Absent: the charge is taken as made now.
   */
  readonly chargedAt?: number
}

/**
 * - `'hit'`: decide and, only if every op is allowed, store every new state (all-or-nothing).
 * - `'check'`: decide, store nothing.
 * - `'refund'`: give `cost` back on every op (strategies without `refund` are left unchanged).
 */
export type EvaluateMode = 'hit' | 'check' | 'refund'

/** A named lock with a time to live. Acquisition never blocks past its timeout. */
export interface BackendLock {
  /**
   * Tries to take the lock. With `blocking: false` answers at once; otherwise retries until
   * `timeoutMs` (default: the backend's `timeoutMs`, or 1000 ms when that is 0) and resolves false then.
   */
  acquire(options?: { blocking?: boolean, timeoutMs?: number }): Promise<boolean>
  /** Releases the lock if this holder still owns it. Never throws for a lock that expired. */
  release(): Promise<void>
}

/** What `healthCheck()` reports. */
export interface BackendHealth {
  healthy: boolean
  /** Round-trip time of the probe in ms. */
  latencyMs: number
  error?: Error
}

/** Options every backend accepts. */
export interface ThrottleBackendOptions {
  /**
   * Prefix of every key this backend writes, so several apps can share one server.
   * @default 'traffik'
   */
  namespace?: string
  /**
   * Whether stored counters survive the app: when `false`, the plugin resets the backend before
   * closing it. Shared backends must stay persistent so a rolling deploy never wipes counters.
   * @default false for InMemoryBackend and custom backends, true for Redis and Memcached
   */
  persistent?: boolean
  /**
   * Deadline of every backend call in ms; past it the call fails with `TRAFFIK_ERR_BACKEND_TIMEOUT`
   * and the throttle's `onError` decides. 0 disables the deadline.
   * @default 0 for InMemoryBackend and custom backends, 250 for Redis and Memcached
   */
  timeoutMs?: number
}
