/**
 * What every conformance case shares: the resolved options, fresh backends on unique namespaces
 * (reset and closed afterwards, so a shared server is left clean), the built-in strategies, and a
 * reference backend that says what an exact backend answers.
 */
import type { Decision } from '../../types/decision.js'
import type { Strategy } from '../../types/strategy.js'
import { InMemoryBackend } from '../backends/in-memory-backend.js'
import type { EvaluateMode, EvaluateOp, ThrottleBackend } from '../backends/throttle-backend.js'
import { ManualClock } from '../clock.js'
import {
  CalendarQuota, Concurrency, FixedWindow, GCRA, LeakyBucket, LeakyBucketWithQueue, SlidingWindowCounter, SlidingWindowLog, TokenBucket, TokenBucketWithDebt
} from '../strategies/index.js'

/**
 * A test runner's `test(name, fn)`: tap's `t.test` (bound to `t`), `node:test`'s `test`, or any
 * function that runs `fn` as one test case and fails it when the promise rejects.
 */
export type TestFunction = (name: string, fn: () => Promise<void>) => unknown

export interface BackendConformanceOptions {
  /** The runner's test function; every case is registered through it. */
  test: TestFunction
  /**
   * Creates a new, not yet initialized backend that writes under `namespace`. The suite calls it
   * once (twice for namespace isolation) per case, initializes the backend, and resets and closes
   * it at the end of the case.
   */
  makeBackend: (namespace: string) => ThrottleBackend | Promise<ThrottleBackend>
  /**
   * Creates a backend whose driver fails: a server that is not running, refuses the
   * credentials, or misses the schema. Used to check that failures surface as `BackendError`.
   * `null` declares a backend that cannot fail (`static driverError = null`, like InMemoryBackend).
   */
  makeFailingBackend: (() => ThrottleBackend | Promise<ThrottleBackend>) | null
  /**
   * A way to freeze the store: backends on a store that `freeze()` stops (e.g. SIGSTOP on a test
   * server of your own, never a shared one) and `thaw()` resumes. Adds the deadline case: calls
   * fail with TRAFFIK_ERR_BACKEND_TIMEOUT at `timeoutMs`, and the backend recovers afterwards.
   * @default undefined (the deadline case is not registered)
   */
  hang?: HangControl
  /**
   * How much later than its TTL a key may still be there. memcached keeps time in whole seconds
   * and a key given n ms lives up to ceil(n / 1000) + 1 s: declare 2000 for it.
   * @default 0
   */
  ttlResolutionMs?: number
  /**
   * Concurrent hits per burst (for one key, at limit 20).
   * @default 50
   */
  concurrency?: number
  /**
   * The strategies the evaluate cases run through.
   * @default every built-in strategy
   */
  strategies?: readonly Strategy[]
  /**
   * Prefix of every case's name (handy when one file checks several backends).
   * @default none (case names as they are)
   */
  name?: string
  /**
   * Prefix of the namespaces the suite writes under; each case adds a random suffix.
   * @default 'conformance'
   */
  namespacePrefix?: string
}

/** Freezes and resumes the store behind the backends it makes. */
export interface HangControl {
  /** A new, not yet initialized backend on the store that `freeze()` stops. */
  makeBackend: (namespace: string) => ThrottleBackend | Promise<ThrottleBackend>
  /**
   * Stops the store; resolve only once it answers nothing. `kill(pid, 'SIGSTOP')` returns before
   * every thread of the server has stopped, and a request answered meanwhile is rightly decided.
   */
  freeze: () => void | Promise<void>
  /** Resumes the store. */
  thaw: () => void | Promise<void>
}

export interface ResolvedOptions {
  readonly hang: HangControl | undefined
  readonly makeBackend: BackendConformanceOptions['makeBackend']
  readonly makeFailingBackend: BackendConformanceOptions['makeFailingBackend']
  readonly ttlResolutionMs: number
  readonly concurrency: number
  readonly strategies: readonly Strategy[]
  readonly namespacePrefix: string
}

/** One case of the suite. */
export interface ConformanceCase {
  readonly name: string
  run(context: CaseContext): Promise<void>
}

export class CaseContext {
  readonly options: ResolvedOptions
  readonly #open: ThrottleBackend[] = []

  constructor (options: ResolvedOptions) {
    this.options = options
  }

  /** A fresh namespace no other case uses. */
  namespace (): string {
    return `${this.options.namespacePrefix}${Math.random().toString(36).slice(2, 10)}`
  }

  /** A new, initialized backend, cleaned up by `dispose()`. */
  async backend (namespace = this.namespace()): Promise<ThrottleBackend> {
    const backend = await this.options.makeBackend(namespace)
    this.#open.push(backend)
    await backend.initialize()
    return backend
  }

  /** Registers a backend made elsewhere for cleanup. */
  track (backend: ThrottleBackend): ThrottleBackend {
    this.#open.push(backend)
    return backend
  }

  /** Resets and closes every backend of the case. Cleanup errors never hide the case's own failure. */
  async dispose (): Promise<void> {
    for (const backend of this.#open.splice(0)) {
      if (!backend.closed) await backend.reset().catch(() => {})
      await backend.close().catch(() => {})
    }
  }
}

/** Every built-in strategy with its default options. */
export function builtInStrategies (): Strategy[] {
  return [
    new FixedWindow(), new SlidingWindowCounter(), new SlidingWindowLog(), new TokenBucket(),
    new TokenBucketWithDebt({ maxDebt: 2 }), new LeakyBucket(), new LeakyBucketWithQueue({ maxDelayMs: 1000 }), new GCRA(),
    new Concurrency(), new CalendarQuota({ period: 'year', rollover: { cap: 5 } })
  ]
}

/** A window long enough that the time a case takes never refills anything. */
export const LONG_WINDOW_MS = 7 * 24 * 60 * 60 * 1000

/** One step of a scripted conversation with a backend. */
export interface ScriptStep {
  readonly mode: EvaluateMode
  readonly ops: readonly EvaluateOp[]
  /**
   * For a `'refund'` step: the index of the earlier step whose charges it gives back. Op i is
   * then refunded with `chargedAt` = the `decidedAt` of that step's decision i, as a throttle
   * refunds a reservation (the backend under test and the reference each use their own stamps).
   * @default undefined (the ops as they are: a charge taken as made now)
   */
  readonly refunds?: number
}

/** The ops of `steps[index]`; for a refund of an earlier step, with the `chargedAt` of its decisions. */
export function scriptOps (steps: readonly ScriptStep[], index: number, decisions: readonly Decision[][]): readonly EvaluateOp[] {
  const step = steps[index]!
  if (step.refunds === undefined) return step.ops
  const charged = decisions[step.refunds]
  return step.ops.map((op, i) => ({ ...op, chargedAt: charged?.[i]?.decidedAt }))
}

/** The decisions of an exact backend for `steps`, all taken at one instant (a reference InMemoryBackend). */
export function referenceDecisions (steps: readonly ScriptStep[]): Decision[][] {
  const reference = new InMemoryBackend({ clock: new ManualClock() })
  const decisions: Decision[][] = []
  for (let i = 0; i < steps.length; i++) decisions.push(reference.evaluate(scriptOps(steps, i, decisions), steps[i]!.mode))
  return decisions
}

/** The part of a decision that does not depend on how much time the case took. */
export function essence (decision: Decision): { allowed: boolean, remaining: number } {
  return { allowed: decision.allowed, remaining: decision.remaining }
}
