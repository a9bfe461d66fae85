/**
 * The backend contract. A backend stores strategy states and offers one atomic entry point,
 * `evaluate`. Built-in backends implement `evaluate` natively (InMemory synchronously, Redis in one
 * Lua round trip). A custom backend implements the storage primitives and inherits a generic
 * `evaluate` (lock, read, step, write: locked-evaluate.ts), which is exact as long as its lock is.
 *
 * Times are milliseconds throughout (`ttlMs`), since windows go below one second.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Decision } from '../../types/decision.js'
import type { BackendHealth, BackendLock, EvaluateMode, EvaluateOp, ThrottleBackendOptions } from '../../types/backend.js'
import { BackendClosedError, BackendError, BackendTimeoutError, UnsupportedError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { evaluateUnderLocks } from './locked-evaluate.js'

export type { BackendHealth, BackendLock, EvaluateMode, EvaluateOp, ThrottleBackendOptions } from '../../types/backend.js'

/** The backend made active by `backend.run(fn)` for `dynamicBackend` throttles. */
export const activeBackend = new AsyncLocalStorage<ThrottleBackend>()

/** Methods wrapped so that driver errors surface as BackendError (with `cause`) and calls respect `timeoutMs`. */
const WRAPPED_METHODS = [
  'get', 'set', 'delete', 'increment', 'decrement', 'expire', 'incrementWithTtl',
  'multiGet', 'multiSet', 'reset', 'clearPrefix', 'evaluate'
] as const

type ErrorClass = abstract new (...args: any[]) => Error

export abstract class ThrottleBackend {
  /**
   * The driver's base error type. Every primitive the subclass implements is wrapped so that
   * errors of this type become `BackendError` with `cause`. Set it to `null` for backends whose
   * methods never fail (InMemory), which then stay unwrapped and synchronous.
   * @default Error
   */
  static driverError: ErrorClass | null = Error

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
    const driverError = (new.target as unknown as typeof ThrottleBackend).driverError
    if (driverError !== null) this.#wrapMethods(driverError)
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
    const started = performance.now()
    try {
      await this.get(`${this.namespace}:health`)
      return { healthy: true, latencyMs: performance.now() - started }
    } catch (error) {
      return { healthy: false, latencyMs: performance.now() - started, error: error as Error }
    }
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
    if (error instanceof BackendError) return error as Error
    return new BackendError(`${this.name}.${operation}`, (error as Error)?.message ?? String(error), { cause: error })
  }

  /**
   * A hit that the backend applied after the caller was already told it timed out (and `onError`
   * answered) is given back, so a slow answer never leaves a client charged for a request that
   * was not decided by it.
   */
  #lateDecision (ops: readonly EvaluateOp[], mode: EvaluateMode): ((decisions: unknown) => void) | undefined {
    if (mode !== 'hit') return undefined
    return (decisions) => {
      if ((decisions as Decision[]).every((d) => d.allowed)) this.refundLateCharge(ops.map((op, i) => ({ ...op, chargedAt: (decisions as Decision[])[i]!.decidedAt }))).catch(() => {})
    }
  }

  /**
   * Gives back a hit that landed after its deadline. Backends whose refunds may need longer than
   * one deadline (e.g. to retry compare-and-swap conflicts) override it; nobody waits on it.
   */
  protected async refundLateCharge (ops: readonly EvaluateOp[]): Promise<void> {
    await this.evaluate(ops, 'refund')
  }

  #wrapMethods (driverError: ErrorClass): void {
    const self = this as unknown as Record<string, (...args: unknown[]) => unknown>
    for (const name of WRAPPED_METHODS) {
      const original = self[name]
      if (typeof original !== 'function') continue
      self[name] = (...args: unknown[]): Promise<unknown> => {
        let pending: Promise<unknown>
        try {
          this.assertOpen()
          pending = Promise.resolve(original.apply(this, args))
        } catch (error) {
          pending = Promise.reject(error)
        }
        const onLate = name === 'evaluate' ? this.#lateDecision(args[0] as readonly EvaluateOp[], args[1] as EvaluateMode) : undefined
        const guarded = this.timeoutMs > 0 ? withDeadline(pending, this.timeoutMs, this.name, onLate) : pending
        return guarded.catch((error: unknown) => {
          if (error instanceof BackendError) throw error
          if (error instanceof driverError) throw this.toBackendError(name, error)
          throw error
        })
      }
    }
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

/**
 * Rejects with BackendTimeoutError when `pending` has not settled within `timeoutMs`. The late
 * outcome of `pending` is swallowed so it can never become an unhandled rejection.
 *
 * When the timer fires, the rejection waits for one turn of I/O (setImmediate): after the
 * process itself stalled (CPU starvation, a long GC), expired timers run before the replies that
 * already arrived are read, and those replies should win rather than be reported as timeouts.
 */
export function withDeadline<T> (pending: Promise<T>, timeoutMs: number, backendName: string, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let answered = false
    const timer = setTimeout(() => {
      // Replies that arrived in this turn of the event loop still win over a timer that fired
      // late because the process was stalled.
      setImmediate(() => {
        if (answered) return
        answered = true
        reject(new BackendTimeoutError(backendName, timeoutMs))
      })
    }, timeoutMs)
    pending.then((value) => {
      clearTimeout(timer)
      if (!answered) {
        answered = true
        resolve(value)
      } else {
        onLate?.(value)
      }
    }, (error: unknown) => {
      clearTimeout(timer)
      if (answered) return
      answered = true
      reject(error)
    })
  })
}
