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
import type {
  BackendHealth, BackendLock, BackendStartup, BackendState, BackendTransition, BlockCacheOptions, EvaluateMode, EvaluateOp, ThrottleBackendOptions
} from '../../types/backend.js'
import { systemClock } from '../clock.js'
import { BackendClosedError, BackendError, BackendTimeoutError, BackendUnavailableError, UnsupportedError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { Availability } from './backend-availability.js'
import { asBackendError, guardOf, withinDeadline, type PerBatchMethod } from './backend-guard.js'
import { BlockCache } from './block-cache.js'
import { LeaseTable } from './lease-table.js'
import { evaluateUnderLocks } from './locked-evaluate.js'

export type {
  BackendHealth, BackendLock, BackendStartup, BackendState, BackendTransition, BlockCacheOptions, EvaluateMode, EvaluateOp, ThrottleBackendOptions
} from '../../types/backend.js'
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
  /** The `startup` option as given; undefined leaves the choice to the plugin (and otherwise means `'required'`). */
  readonly startup: BackendStartup | undefined
  #initialized = false
  #initializing: Promise<void> | undefined
  /** Aborted by `close()`, so an attempt under way lets go of what it opened. */
  #abort: AbortController | undefined
  /** The first attempt of a degraded start, shared by concurrent `start('degraded')` calls. */
  #starting: Promise<void> | undefined
  #closed = false
  readonly #availability = new Availability()
  readonly #blockCache: BlockCache | undefined
  #leases: LeaseTable | undefined

  constructor (options: ThrottleBackendOptions = {}, defaults: { persistent?: boolean, timeoutMs?: number } = {}) {
    if (options === null || typeof options !== 'object') invalidOption('backend options', 'an object', options)
    const { namespace = 'traffik', persistent = defaults.persistent ?? false, timeoutMs = defaults.timeoutMs ?? 0, startup, blockCache = false } = options
    if (typeof namespace !== 'string' || namespace.length === 0 || namespace.length > 64 || /\s/.test(namespace)) {
      invalidOption('namespace', 'a non-empty string of at most 64 characters without spaces', namespace)
    }
    if (typeof persistent !== 'boolean') invalidOption('persistent', 'a boolean', persistent)
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      invalidOption('timeoutMs', 'a finite number of milliseconds >= 0', timeoutMs)
    }
    if (startup !== undefined && startup !== 'required' && startup !== 'degraded') invalidOption('startup', "'required' or 'degraded'", startup)
    this.namespace = namespace
    this.persistent = persistent
    this.timeoutMs = timeoutMs
    this.startup = startup
    // The one place the guard is applied: this instance delegates to its class's guard, which
    // calls the class's methods as written (backend-guard.ts).
    const guard = guardOf(new.target as unknown as typeof ThrottleBackend)
    if (guard !== null) Object.setPrototypeOf(this, guard)
    // The guard consults the cache: a backend without one answers in process already.
    if (blockCache !== false && guard === null) invalidOption('blockCache', `false: ${new.target.name} answers in process already`, blockCache)
    this.#blockCache = blockCacheOf(blockCache)
  }

  /** The block cache (the `blockCache` option), consulted by the guard; undefined when off. */
  protected get blockCache (): BlockCache | undefined {
    return this.#blockCache
  }

  /** The leases of this process, consulted by the guard for ops that carry a lease policy (docs/leases.md). */
  protected get leaseTable (): LeaseTable {
    this.#leases ??= new LeaseTable(async (ops, mode) => await this.evaluate(ops, mode))
    return this.#leases
  }

  /** The lease table if an op ever carried a lease policy; undefined otherwise. */
  protected get leasesInUse (): LeaseTable | undefined {
    return this.#leases
  }

  /**
   * Whether this backend applies the fleet's overrides inside its decisions (ops carrying
   * `overrides`, see EvaluateOp); the plugin then stores them where it reads them. False unless a
   * backend that can says so (RedisBackend on one node or through Sentinel).
   */
  get overridesInScript (): boolean {
    return false
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

  /** Where the backend stands (see BackendState). */
  get state (): BackendState {
    return this.#availability.state
  }

  /**
   * Calls `listener` on each transition (degraded, down, recovered), once when it happens: the
   * plugin logs them. Returns the function that removes the listener.
   */
  onTransition (listener: (transition: BackendTransition) => void): () => void {
    return this.#availability.listen(listener)
  }

  /**
   * Connects / prepares the backend, and rejects with a coded BackendError when it cannot.
   * Idempotent: concurrent and repeated calls share one run.
   */
  initialize (): Promise<void> {
    if (this.#initialized) return Promise.resolve()
    if (this.#initializing !== undefined) return this.#initializing
    const abort = new AbortController()
    this.#abort = abort
    this.#closed = false
    this.#availability.connecting()
    const run = this.onInitialize(abort.signal).then(() => {
      // Closed meanwhile: close() releases what this run opened.
      if (abort.signal.aborted) throw new BackendClosedError(this.name)
      this.#initializing = undefined
      this.#initialized = true
      this.#availability.succeeded()
    }, (error: unknown) => {
      const failure = this.toBackendError('initialize', error)
      if (this.#initializing === run) this.#initializing = undefined
      if (!abort.signal.aborted) this.#availability.connectFailed(failure)
      throw failure
    })
    this.#initializing = run
    return run
  }

  /**
   * Starts the backend as `startup` says (see ThrottleBackendOptions.startup); the plugin calls
   * it in `onReady`, and for a backend `resolveBackend` returns on first use (always degraded).
   * `'required'` is `initialize()`. `'degraded'` never rejects: it waits for the first attempt
   * for at most `timeoutMs` (1000 ms when that is 0); a backend not connected by then is
   * degraded: its calls fail at once with `TRAFFIK_ERR_BACKEND_UNAVAILABLE` while it keeps
   * connecting in the background (after 100, 200, then every 250 ms), until it takes over.
   */
  async start (startup: BackendStartup = this.startup ?? 'required'): Promise<void> {
    if (startup !== 'required' && startup !== 'degraded') invalidOption('startup', "'required' or 'degraded'", startup)
    if (this.#initialized) return
    if (startup === 'required') return await this.initialize()
    if (this.#availability.state === 'degraded') return
    this.#starting ??= this.#attempt().finally(() => { this.#starting = undefined })
    const graceMs = this.timeoutMs > 0 ? this.timeoutMs : 1000
    let timer: ReturnType<typeof setTimeout> | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
    await Promise.race([this.#starting, grace])
    clearTimeout(timer)
    if (!this.#initialized && !this.#closed) {
      this.#availability.degrade(this.#availability.lastError ?? new BackendError(this.name, `not connected within ${graceMs} ms; still trying`))
    }
  }

  /** One attempt of a degraded start; a failure degrades the backend and schedules the next. Never rejects. */
  async #attempt (): Promise<void> {
    try {
      await this.initialize()
    } catch (error) {
      if (this.#availability.state === 'closed') return
      this.#availability.degrade(error as Error)
      this.#availability.retry(async () => { await this.#attempt() })
    }
  }

  /** Releases connections and timers; never deletes data. Idempotent. */
  async close (): Promise<void> {
    if (this.#closed) return
    // Unused leased units go back to the store while it is still open (where that is exact).
    if (this.#leases !== undefined && this.#initialized) await this.#leases.giveBackAll()
    // Another close() may have finished while the units went back.
    if (this.#closed) return
    this.#closed = true
    this.#initialized = false
    this.#availability.close()
    const pending = this.#initializing
    this.#initializing = undefined
    this.#abort?.abort()
    this.#abort = undefined
    // An attempt under way ends first (it was aborted), so what it opened is released below.
    await pending?.catch(() => {})
    await this.onClose()
  }

  /**
   * Subclass hook for `initialize()`. `signal` is aborted when `close()` is called meanwhile:
   * stop waiting for the connection then (close() awaits this hook before `onClose()`).
   */
  protected async onInitialize (_signal?: AbortSignal): Promise<void> {}

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
      this.noteSuccess()
      return { healthy: true, latencyMs: performance.now() - started }
    } catch (error) {
      const failure = this.toBackendError('healthCheck', error)
      this.noteFailure(failure)
      return { healthy: false, latencyMs: performance.now() - started, error: failure }
    }
  }

  /** `pending` bounded by `timeoutMs` (when above 0): for work the guard does not bound per call (see `perBatchDeadline`). */
  protected bounded<T> (pending: Promise<T>): Promise<T> {
    return withinDeadline(pending, this.timeoutMs, this.name)
  }

  /**
   * This backend's time on the app host, in ms since the epoch (its clock for a backend with an
   * injected clock): what calendar period bounds are computed at before a call.
   */
  currentTime (): number {
    return this.now()
  }

  /** The time used by the generic `evaluate`, in ms since the epoch. Override to use the server's clock. */
  protected now (): number {
    return Date.now()
  }

  /**
   * Throws when the backend was closed, or is degraded (it has not connected yet: the call fails
   * at once rather than wait for a connection). Subclasses call it at the start of operations.
   */
  protected assertOpen (): void {
    if (this.#closed) throw new BackendClosedError(this.name)
    if (this.#availability.state === 'degraded') throw this.#availability.unavailableError(this.name)
  }

  /** The guard reports each answered call: a degraded or down backend has recovered. */
  protected noteSuccess (): void {
    if (this.#availability.state !== 'up' && this.#initialized) this.#availability.succeeded()
  }

  /**
   * The guard reports each failed call: an up backend is down from the first failure of its own
   * (not a closed or degraded refusal); a timeout names the last failure seen before it.
   */
  protected noteFailure (error: Error): void {
    if (!(error instanceof BackendError) || error instanceof BackendClosedError || error instanceof BackendUnavailableError) return
    const last = this.#availability.lastError
    if (isTimeout(error) && last !== undefined && !isTimeout(last) && error.cause === undefined) {
      error.message += ` (last error seen: ${last.message})`
      error.cause = last
    }
    if (this.#initialized) this.#availability.failed(error)
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

function blockCacheOf (option: unknown): BlockCache | undefined {
  if (option === false) return undefined
  if (option === true) return new BlockCache(10_000, systemClock.now)
  if (option === null || typeof option !== 'object') invalidOption('blockCache', 'a boolean or { maxKeys, clock }', option)
  rejectUnknownKeys('blockCache', option, ['maxKeys', 'clock'])
  const { maxKeys = 10_000, clock = systemClock } = option as BlockCacheOptions
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) invalidOption('blockCache.maxKeys', 'a positive integer', maxKeys)
  if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') invalidOption('blockCache.clock', 'an object with a now() method', clock)
  return new BlockCache(maxKeys, () => clock.now())
}

function isTimeout (error: Error): boolean {
  return error instanceof BackendTimeoutError
}

const BASE_OPTIONS: readonly string[] = ['namespace', 'persistent', 'timeoutMs', 'startup', 'blockCache']
