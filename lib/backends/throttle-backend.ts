/**
 * The backend contract. A backend stores strategy states and offers one atomic entry point,
 * `evaluate`. Built-in backends implement `evaluate` natively (InMemory synchronously, Redis in one
 * Lua round trip). A custom backend implements the storage primitives and inherits a generic
 * `evaluate` (lock, read, step, write: locked-evaluate.ts), which is exact as long as its lock is.
 * Every call on a backend goes through its class's guard (backend-guard.ts).
 *
 * Times are milliseconds throughout (`ttlMs`), since windows go below one second.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Decision } from '../../types/decision.js'
import type { BackendHealth, BackendLock, EvaluateMode, EvaluateOp, ThrottleBackendOptions } from '../../types/backend.js'
import { BackendClosedError, UnsupportedError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { asBackendError, guardOf, withinDeadline, type PerBatchMethod } from './backend-guard.js'
import { evaluateUnderLocks } from './locked-evaluate.js'

export type { BackendHealth, BackendLock, EvaluateMode, EvaluateOp, ThrottleBackendOptions } from '../../types/backend.js'
export { withDeadline } from './backend-guard.js'

/** The backend made active by `backend.run(fn)` for `dynamicBackend` throttles. */
export const activeBackend = new AsyncLocalStorage<ThrottleBackend>()

type ErrorClass = abstract new (...args: any[]) => Error

export abstract class ThrottleBackend {
  /**
   * The driver's base error type: errors of this type thrown by a guarded method become
   * `BackendError` with `cause` (backend-guard.ts lists the guarded methods). `null` declares a
   * backend that cannot fail (in process, like InMemory): it gets no guard, so its methods run
   * as written and may answer synchronously.
   * @default Error
   */
  static driverError: ErrorClass | null = Error

  /**
   * Guarded methods whose own code bounds each batch of its work with `this.bounded(...)`
   * instead of the guard bounding the whole call by `timeoutMs` (a sweep of a large namespace may
   * rightly take longer than one deadline). The guard still refuses calls once closed and wraps
   * driver errors. `evaluate` is always bounded per call.
   * @default [] (every guarded method bounded per call)
   */
  static perBatchDeadline: readonly PerBatchMethod[] = []

  readonly namespace: string
  readonly persistent: boolean
  readonly timeoutMs: number
  #initialized = false
  #initializing: Promise<void> | undefined
  #closed = false

  constructor (options: ThrottleBackendOptions = {}, defaults: { persistent?: boolean, timeoutMs?: number } = {}) {
    if (options === null || typeof options !== 'object') invalidOption('backend options', 'an object', options)
    const { namespace = 'traffik', persistent = defaults.persistent ?? false, timeoutMs = defaults.timeoutMs ?? 0 } = options
    if (typeof namespace !== 'string' || namespace.length === 0 || namespace.length > 64 || /\s/.test(namespace)) {
      invalidOption('namespace', 'a non-empty string of at most 64 characters without spaces', namespace)
    }
    if (typeof persistent !== 'boolean') invalidOption('persistent', 'a boolean', persistent)
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      invalidOption('timeoutMs', 'a finite number of milliseconds >= 0', timeoutMs)
    }
    this.namespace = namespace
    this.persistent = persistent
    this.timeoutMs = timeoutMs
    // The one place the guard is applied: this instance delegates to its class's guard, which
    // calls the class's methods as written (backend-guard.ts).
    const guard = guardOf(new.target as unknown as typeof ThrottleBackend)
    if (guard !== null) Object.setPrototypeOf(this, guard)
  }

  /** A short name for messages, e.g. `'redis'`. */
  get name (): string {
    return this.constructor.name
  }

  /** True once `initialize()` has completed. */
  get initialized (): boolean {
    return this.#initialized
  }

  /** True once `close()` was called. */
  get closed (): boolean {
    return this.#closed
  }

  /** Connects / prepares the backend. Idempotent: concurrent and repeated calls share one run. */
  initialize (): Promise<void> {
    if (this.#initialized) return Promise.resolve()
    this.#initializing ??= this.onInitialize().then(() => {
      this.#initialized = true
      this.#closed = false
    }, (error: unknown) => {
      this.#initializing = undefined
      throw this.toBackendError('initialize', error)
    })
    return this.#initializing
  }

  /** Releases connections and timers; never deletes data. Idempotent. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#initialized = false
    this.#initializing = undefined
    await this.onClose()
  }

  /** Subclass hook for `initialize()`. */
  protected async onInitialize (): Promise<void> {}

  /** Subclass hook for `close()`. */
  protected async onClose (): Promise<void> {}

  /** Whether the backend can serve requests right now. */
  async ready (): Promise<boolean> {
    return this.#initialized && !this.#closed
  }

  /** Probes the backend with a read and reports its latency. Never throws. */
  async healthCheck (): Promise<BackendHealth> {
    return await this.probe(async () => await this.get(`${this.namespace}:health`))
  }

  /**
   * Runs `check` (a round trip to the store) as a health probe: refused once closed, bounded by
   * `timeoutMs`, timed. Resolves the health report; never throws.
   */
  protected async probe (check: () => Promise<unknown>): Promise<BackendHealth> {
    const started = performance.now()
    try {
      this.assertOpen()
      await this.bounded(check())
      return { healthy: true, latencyMs: performance.now() - started }
    } catch (error) {
      return { healthy: false, latencyMs: performance.now() - started, error: this.toBackendError('healthCheck', error) }
    }
  }

  /** `pending` bounded by `timeoutMs` (when above 0): for work the guard does not bound per call (see `perBatchDeadline`). */
  protected bounded<T> (pending: Promise<T>): Promise<T> {
    return withinDeadline(pending, this.timeoutMs, this.name)
  }

  /** The time used by the generic `evaluate`, in ms since the epoch. Override to use the server's clock. */
  protected now (): number {
    return Date.now()
  }

  /** Throws when the backend was closed; subclasses call it at the start of operations. */
  protected assertOpen (): void {
    if (this.#closed) throw new BackendClosedError(this.name)
  }

  /**
   * Runs `fn` with this backend active for `dynamicBackend` throttles (AsyncLocalStorage).
   * Contexts nest: the innermost `run` wins, and the outer one is back when it returns.
   */
  run<T> (fn: () => T): T {
    return activeBackend.run(this, fn)
  }

  // ---- storage primitives (strings and integer counters; TTLs in ms) ----

  // Keys passed to primitives are logical keys; each backend adds its namespace itself.

  /** The value stored at `key`, or null. */
  abstract get (key: string): Promise<string | null>
  /** Stores `value` at `key`, expiring after `ttlMs` when given. */
  abstract set (key: string, value: string, ttlMs?: number): Promise<void>
  /** Deletes `key`; resolves whether it existed. */
  abstract delete (key: string): Promise<boolean>
  /** Atomically adds `amount` to the integer at `key` (missing keys start at 0) and resolves the new value. */
  abstract increment (key: string, amount?: number): Promise<number>
  /** Sets the time to live of `key`; resolves whether the key existed. */
  abstract expire (key: string, ttlMs: number): Promise<boolean>
  /** A named lock; see BackendLock. `ttlMs` bounds how long a crashed holder can keep it. */
  abstract getLock (name: string, ttlMs: number): BackendLock
  /** Deletes every key of this backend's namespace, and nothing else. */
  abstract reset (): Promise<void>

  /**
   * Deletes every key that starts with `prefix` (used by `throttle.reset()` to clear one throttle).
   * Resolves how many keys were deleted when the backend can tell, else -1.
   * The default throws `TRAFFIK_ERR_UNSUPPORTED`; backends that can enumerate keys override it.
   */
  async clearPrefix (prefix: string): Promise<number> {
    throw new UnsupportedError(`${this.name} cannot delete keys by prefix ('${prefix}'); reset the backend instead`)
  }

  /** Atomically subtracts `amount`. */
  async decrement (key: string, amount = 1): Promise<number> {
    return await this.increment(key, -amount)
  }

  /**
   * Adds `amount` and, when the key was new, sets its TTL. This default takes two calls and is
   * not atomic; backends with an atomic way should override it.
   */
  async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> {
    const value = await this.increment(key, amount)
    if (value === amount) await this.expire(key, ttlMs)
    return value
  }

  /** Reads several keys. This default issues the reads concurrently. */
  async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    return await Promise.all(keys.map(async (key) => await this.get(key)))
  }

  /** Writes several keys. This default issues the writes concurrently (not atomically). */
  async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    await Promise.all(entries.map(async ([key, value]) => { await this.set(key, value, ttlMs) }))
  }

  /**
   * Decides every op atomically (see EvaluateMode). This generic version takes a lock per key
   * (in sorted order, so two decisions never deadlock), reads the states, steps the strategies and
   * writes the new states (locked-evaluate.ts). Backends with a native atomic operation override it.
   */
  evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Decision[] | Promise<Decision[]> {
    return evaluateUnderLocks(this, ops, mode, () => this.now())
  }

  /** Wraps any error as BackendError naming the operation, keeping the original as `cause`. */
  protected toBackendError (operation: string, error: unknown): Error {
    return asBackendError(this.name, operation, error)
  }

  /**
   * Gives back a hit that landed after its deadline (the guard calls it; nobody waits on it).
   * Backends whose refunds may need longer than one deadline (e.g. to retry compare-and-swap
   * conflicts) override it.
   */
  protected async refundLateCharge (ops: readonly EvaluateOp[]): Promise<void> {
    await this.evaluate(ops, 'refund')
  }
}

/**
 * Rejects option keys a built-in backend does not know, so a typo (`maxkeys`, `timeout`) cannot
 * leave a default in place silently. Built-in backends call it only for their own class, not for
 * subclasses, which may read options of their own.
 */
export function assertKnownBackendOptions (backend: string, options: object, known: readonly string[]): void {
  rejectUnknownKeys(backend, options, [...BASE_OPTIONS, ...known])
}

const BASE_OPTIONS: readonly string[] = ['namespace', 'persistent', 'timeoutMs']
