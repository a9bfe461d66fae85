/**
 * The guard: what every call on a backend gets, whoever makes it (a throttle, the plugin, the
 * conformance kit, a composite backend, a script): a refusal once the backend is closed (and an
 * immediate one while it is degraded), the deadline `timeoutMs`, driver errors as `BackendError`
 * with `cause`, the refund of a hit that lands after its deadline, and the call's outcome
 * reported to the backend's availability (backend-availability.ts).
 *
 * What each method gets is declared in GUARD_POLICY below, and applied here and nowhere else.
 * A backend class never has its methods replaced: the guard is one object per class, built once
 * from the policy, that sits between the instance and the class's prototype (so `backend.get`
 * is the guard's `get`, which calls `YourBackend.prototype.get`, the method as you wrote it).
 * Why not the alternatives: docs/backends/custom.md ("The guard").
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode, EvaluateOp } from '../../types/backend.js'
import { BackendError, BackendTimeoutError, invalidOption } from '../errors.js'
import type { BlockCache } from './block-cache.js'
import type { LeaseTable } from './lease-table.js'

/** How a guarded method is bounded by the backend's `timeoutMs`. */
export type Deadline =
  /** The whole call. */
  | 'per-call'
  /** Each batch of work, by the method itself (`this.bounded(...)`): for sweeps that may rightly outlast one deadline. */
  | 'per-batch'

/** What the guard adds to one method, besides the closed check and the error wrapping that every guarded method gets. */
export interface MethodPolicy {
  readonly deadline: Deadline
  /** A `'hit'` that resolves after its deadline (the caller was already answered) is given back. */
  readonly refundsLateHits: boolean
}

const PER_CALL: MethodPolicy = Object.freeze({ deadline: 'per-call', refundsLateHits: false })
const PER_BATCH: MethodPolicy = Object.freeze({ deadline: 'per-batch', refundsLateHits: false })

/** The declared policy: every guarded method of the backend contract, and what it gets by default. */
export const GUARD_POLICY = Object.freeze({
  get: PER_CALL,
  set: PER_CALL,
  delete: PER_CALL,
  increment: PER_CALL,
  decrement: PER_CALL,
  expire: PER_CALL,
  incrementWithTtl: PER_CALL,
  multiGet: PER_CALL,
  multiSet: PER_CALL,
  reset: PER_CALL,
  clearPrefix: PER_CALL,
  evaluate: Object.freeze({ deadline: 'per-call', refundsLateHits: true }) as MethodPolicy
})

/** A method the guard wraps. */
export type GuardedMethod = keyof typeof GUARD_POLICY

/**
 * Methods a backend class may move to a per-batch deadline (`static perBatchDeadline`). Not
 * `evaluate`: its late hits are only known to be late by its own deadline.
 */
export type PerBatchMethod = Exclude<GuardedMethod, 'evaluate'>

/** The parts of a backend the guard uses; protected members of ThrottleBackend among them. */
interface GuardedBackend {
  readonly name: string
  readonly timeoutMs: number
  assertOpen(): void
  noteSuccess(): void
  noteFailure(error: Error): void
  toBackendError(operation: string, error: unknown): Error
  refundLateCharge(ops: readonly EvaluateOp[]): Promise<void>
  readonly blockCache: BlockCache | undefined
  /** The leases of this process (created on the first op that carries a lease policy). */
  readonly leaseTable: LeaseTable
  /** The lease table if one was made. */
  readonly leasesInUse: LeaseTable | undefined
}

/** What the guard needs to know of a backend class. */
export interface GuardedClass {
  readonly prototype: object
  readonly name: string
  /** The driver's base error type (see ThrottleBackend.driverError). */
  readonly driverError: (abstract new (...args: any[]) => Error) | null
  readonly perBatchDeadline: readonly PerBatchMethod[]
}

const guards = new WeakMap<GuardedClass, object | null>()

/**
 * The guard of a backend class: an object whose prototype is the class's prototype and that holds
 * one guarded method per entry of GUARD_POLICY, each calling the class's own method. Built once
 * per class and shared by its instances. Null for a class that declares it cannot fail
 * (`driverError = null`), which only a class whose ancestors declare the same may do.
 */
export function guardOf (BackendClass: GuardedClass): object | null {
  let guard = guards.get(BackendClass)
  if (guard !== undefined) return guard
  if (BackendClass.driverError === null) {
    assertNoGuardedAncestor(BackendClass)
    guard = null
  } else {
    guard = buildGuard(BackendClass)
  }
  guards.set(BackendClass, guard)
  return guard
}

function buildGuard (BackendClass: GuardedClass): object {
  const policy = policyOf(BackendClass)
  const { prototype, driverError } = BackendClass
  const guard = Object.create(prototype, {
    constructor: { value: BackendClass, writable: true, configurable: true }
  }) as object
  for (const method of Object.keys(policy) as GuardedMethod[]) {
    Object.defineProperty(guard, method, {
      value: guardedMethod(method, policy[method], prototype as Record<GuardedMethod, (...args: unknown[]) => unknown>, driverError),
      writable: true,
      configurable: true
    })
  }
  return guard
}

/** A subclass of a guarded backend cannot take its methods out of the guard by declaring `driverError = null`. */
function assertNoGuardedAncestor (BackendClass: GuardedClass): void {
  // Up to, not including, the root class (ThrottleBackend), whose default is Error.
  for (let ancestor: unknown = Object.getPrototypeOf(BackendClass); isBackendSubclass(ancestor); ancestor = Object.getPrototypeOf(ancestor)) {
    if (ancestor.driverError !== null) {
      invalidOption(`${BackendClass.name}.driverError`, `a driver error type, as ${ancestor.name} declares one (a subclass cannot take its methods out of the guard)`, null)
    }
  }
}

function isBackendSubclass (value: unknown): value is GuardedClass {
  return typeof value === 'function' && 'driverError' in value && 'driverError' in Object.getPrototypeOf(value)
}

/** GUARD_POLICY with the class's per-batch methods; a class may move methods to per-batch, never out of the guard. */
function policyOf (BackendClass: GuardedClass): Record<GuardedMethod, MethodPolicy> {
  const policy: Record<GuardedMethod, MethodPolicy> = { ...GUARD_POLICY }
  const perBatch: unknown = BackendClass.perBatchDeadline
  if (!Array.isArray(perBatch)) invalidOption(`${BackendClass.name}.perBatchDeadline`, 'an array of method names', perBatch)
  for (const method of perBatch as unknown[]) {
    if (typeof method !== 'string' || !(method in GUARD_POLICY) || method === 'evaluate') {
      invalidOption(`${BackendClass.name}.perBatchDeadline`, `names among ${Object.keys(GUARD_POLICY).filter((m) => m !== 'evaluate').join(', ')}`, method)
    }
    policy[method as PerBatchMethod] = PER_BATCH
  }
  return policy
}

function guardedMethod (
  method: GuardedMethod,
  policy: MethodPolicy,
  implementations: Record<GuardedMethod, (...args: unknown[]) => unknown>,
  driverError: GuardedClass['driverError']
): (this: GuardedBackend, ...args: unknown[]) => unknown {
  return function guarded (this: GuardedBackend, ...args: unknown[]): unknown {
    let pending: Promise<unknown>
    const cache = this.blockCache
    try {
      this.assertOpen()
      if (method === 'evaluate' && carriesLease(args[0] as readonly EvaluateOp[])) {
        const ops = args[0] as readonly EvaluateOp[]
        const table = this.leaseTable
        // A hit the leases hold is answered synchronously, as InMemoryBackend answers (the
        // contract allows it: `Decision[] | Promise<Decision[]>`).
        if (args[1] === 'hit') {
          const local = table.answerLocally(ops)
          if (local !== undefined) return local
        }
        // The table asks the store through this very method, with ops that carry no lease.
        return table.evaluate(ops, args[1] as EvaluateMode)
      }
      const leases = this.leasesInUse
      if (leases !== undefined) forgetWrittenKeys(leases, method, args)
      if (cache !== undefined) {
        const answers = consultBlockCache(cache, method, args)
        if (answers !== undefined) return Promise.resolve(answers)
      }
      pending = Promise.resolve(implementations[method].apply(this, args))
    } catch (error) {
      pending = Promise.reject(error)
    }
    if (cache !== undefined && method === 'evaluate' && args[1] === 'hit') {
      const ops = args[0] as readonly EvaluateOp[]
      pending = pending.then((decisions) => {
        cache.learn(ops, decisions as readonly Decision[])
        return decisions
      })
    }
    if (policy.deadline === 'per-call' && this.timeoutMs > 0) {
      const onLate = policy.refundsLateHits && args[1] === 'hit' ? lateHitRefund(this, args[0] as readonly EvaluateOp[]) : undefined
      pending = withDeadline(pending, this.timeoutMs, this.name, onLate)
    }
    return pending.then((value) => {
      this.noteSuccess()
      return value
    }, (error: unknown) => {
      if (error instanceof BackendError) {
        this.noteFailure(error as Error)
        throw error
      }
      if (driverError !== null && error instanceof driverError) {
        const wrapped = this.toBackendError(method, error)
        this.noteFailure(wrapped)
        throw wrapped
      }
      throw error
    })
  }
}

/**
 * The block cache's part in a call, before the backend is asked: a hit it can answer is answered
 * (no round trip); a refund, and every write of a key, forget what the cache remembers of it.
 */
function consultBlockCache (cache: BlockCache, method: GuardedMethod, args: readonly unknown[]): Decision[] | undefined {
  switch (method) {
    case 'evaluate': {
      const ops = args[0] as readonly EvaluateOp[]
      if (args[1] === 'refund') cache.forget(ops.map((op) => op.key))
      return cache.answer(ops, args[1] as EvaluateMode)
    }
    default: forgetWrittenKeys(cache, method, args); return undefined
  }
}

function carriesLease (ops: readonly EvaluateOp[]): boolean {
  for (let i = 0; i < ops.length; i++) if (ops[i]!.lease !== undefined) return true
  return false
}

/** What the guard keeps per key in the process (the block cache, the leases): forgotten when the store's key changes. */
interface KeyedMemory {
  forget(keys: Iterable<string>): void
  forgetPrefix(prefix: string): void
  clear(): void
}

/**
 * Every write of a key through a method other than `evaluate` (and a reset) makes `memory` forget
 * that key: a remembered rejection no longer holds, leased units are gone with the state they
 * were charged in. Reads forget nothing.
 */
function forgetWrittenKeys (memory: KeyedMemory, method: GuardedMethod, args: readonly unknown[]): void {
  switch (method) {
    case 'reset': memory.clear(); return
    case 'clearPrefix': memory.forgetPrefix(String(args[0])); return
    case 'multiSet': memory.forget((args[0] as ReadonlyArray<readonly [string, string]>).map(([key]) => key)); return
    case 'get':
    case 'multiGet':
    case 'evaluate': return
    default: memory.forget([String(args[0])])
  }
}

/**
 * A hit the backend applied after the caller was told it timed out (and `onError` answered) is
 * given back, so a slow answer never leaves a client charged for a request it did not decide.
 * Each op is refunded as charged when the backend decided it (`chargedAt` from `decidedAt`).
 */
function lateHitRefund (backend: GuardedBackend, ops: readonly EvaluateOp[]): (decisions: unknown) => void {
  return (decisions) => {
    const decided = decisions as readonly Decision[]
    if (!decided.every((d) => d.allowed)) return
    const charges = ops.map((op, i) => {
      const decidedAt = decided[i]?.decidedAt
      return decidedAt === undefined ? op : { ...op, chargedAt: decidedAt }
    })
    backend.refundLateCharge(charges).catch(() => {})
  }
}

/**
 * `pending`, bounded by `timeoutMs` when it is above 0 (a backend without a deadline waits as
 * long as its store does). The one place that decides whether a deadline applies.
 */
export function withinDeadline<T> (pending: Promise<T>, timeoutMs: number, backendName: string): Promise<T> {
  return timeoutMs > 0 ? withDeadline(pending, timeoutMs, backendName) : pending
}

/**
 * Rejects with BackendTimeoutError when `pending` has not settled within `timeoutMs`. The late
 * outcome of `pending` is swallowed so it can never become an unhandled rejection; a late value
 * goes to `onLate`.
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

/**
 * `pending`, or a rejection as soon as `signal` is aborted (a backend closed while it was still
 * connecting stops waiting; its `onInitialize` then releases what it opened). The late outcome
 * of `pending` is swallowed.
 */
export function untilAborted<T> (pending: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return pending
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(new Error('closed while connecting')) }
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    pending.then((value) => {
      signal.removeEventListener('abort', onAbort)
      resolve(value)
    }, (error: unknown) => {
      signal.removeEventListener('abort', onAbort)
      reject(error)
    })
  })
}

/** Wraps any error as BackendError naming the operation, keeping the original as `cause`. */
export function asBackendError (backendName: string, operation: string, error: unknown): Error {
  if (error instanceof BackendError) return error as Error
  return new BackendError(`${backendName}.${operation}`, (error as Error)?.message ?? String(error), { cause: error })
}
