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
  /**
   * Only for strategies with `periods` (calendar quotas): the period bounds the host computed for
   * this request (`strategy.periods.bounds`), passed to `step`/`refund` and the Lua twin as they are.
   * Absent: the strategy computes them from the backend's clock (Redis from the app host's).
   */
  readonly bounds?: readonly number[]
  /**
   * Only where the backend reads the fleet's overrides inside the decision (RedisBackend on one
   * node or Sentinel; see docs/overrides.md): where they are and whose they are. The backend
   * applies the override in force for this throttle and identifier to `limit`, `windowMs` and
   * `cost` (the op's own values are the throttle's) and says which applied. Other backends ignore it.
   */
  readonly overrides?: OverrideLookup
  /**
   * Only for `'hit'`, `'check'` and `'refund'` of a throttle with the `lease` option: how this
   * process may lease units of the key's budget and decide hits on it locally (docs/leases.md).
   * Applied by the guard of a network backend; InMemoryBackend ignores it (it is exact in process).
   */
  readonly lease?: LeasePolicy
}

/** Where a decision finds the fleet's overrides of its throttle (see `EvaluateOp.overrides`). */
export interface OverrideLookup {
  /** The logical key of the overrides' field hash. Backends add their namespace. */
  readonly key: string
  /** The field of the whole throttle's override. */
  readonly throttleField: string
  /** The field prefix of one identifier's override; the op's key completes it. */
  readonly identifierPrefix: string
  /** Whether the op's cost was given by the caller (`hit(request, { cost })`): an override's cost then does not replace it. */
  readonly fixedCost: boolean
}

/**
 * A throttle's `lease` option as its ops carry it: compiled once, when the throttle is built.
 * Backends read it; only the guard of a network backend acts on it.
 */
export interface LeasePolicy {
  /** Most units one lease takes. */
  readonly maxUnits: number
  /** Most units one lease takes, as a share of the limit (0 < maxShare <= 1). */
  readonly maxShare: number
  /** How long a lease lasts at most, in ms. */
  readonly ttlMs: number
  /** How many keys this process keeps lease records for; past it the oldest record goes. */
  readonly maxKeys: number
  /** The local time, in ms since the epoch. */
  readonly now: () => number
  /** A lease ends with the window it was charged in (window strategies). */
  readonly endsWithWindow: boolean
  /** Units a lease did not use are given back to the store (only where the strategy's refund is exact). */
  readonly givesBack: boolean
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
  /**
   * What `start()` (the plugin's `onReady`) does when the backend cannot connect:
   * - `'required'`: fail with the backend's coded error, so `app.ready()` rejects;
   * - `'degraded'`: let the app start; until the backend connects (it keeps trying in the
   *   background, with backoff), every call fails at once with `TRAFFIK_ERR_BACKEND_UNAVAILABLE`
   *   and the throttles' `onError` answers.
   * @default 'required' (or, for a backend the plugin owns, the plugin's `startup` option)
   */
  startup?: BackendStartup
  /**
   * Remember each rejected hit and its exact wait in this process, and answer the same hit on
   * that key here, with no round trip, until the wait is over (docs/block-cache.md). `true` takes
   * the defaults of BlockCacheOptions. Checks (`stat`, `peek`) always ask the store; refunds,
   * deletes and resets through this backend forget the keys they touch at once. Not taken by
   * InMemoryBackend, which answers in process already.
   * @default false
   */
  blockCache?: boolean | BlockCacheOptions
}

/** Options of the block cache (see `ThrottleBackendOptions.blockCache`). */
export interface BlockCacheOptions {
  /**
   * How many keys are remembered at most; past it the oldest remembered rejection is evicted
   * (and that client's next request asks the store again).
   * @default 10000
   */
  maxKeys?: number
  /**
   * The time source measuring the waits, in ms since the epoch.
   * @default the system clock (`Date.now()`)
   */
  clock?: { now(): number }
}

/** How a backend starts when it cannot connect (see `ThrottleBackendOptions.startup`). */
export type BackendStartup = 'required' | 'degraded'

/**
 * Where a backend stands:
 * - `'idle'`: not started (or started lazily, on first use);
 * - `'connecting'`: its first connection attempt is under way;
 * - `'up'`: connected and answering;
 * - `'degraded'`: it never connected; calls fail at once while it keeps connecting in the background;
 * - `'down'`: it was up, and its last call failed (the driver reconnects; the next success makes it up again);
 * - `'closed'`: `close()` was called.
 */
export type BackendState = 'idle' | 'connecting' | 'up' | 'degraded' | 'down' | 'closed'

/** A change of a backend's state that operators should see (the plugin logs each once). */
export interface BackendTransition {
  /** `'degraded'`: started without a connection; `'down'`: calls started failing; `'recovered'`: answering again. */
  readonly type: 'degraded' | 'down' | 'recovered'
  /** The failure behind `'degraded'` and `'down'`. */
  readonly error?: Error
  /** For `'recovered'`: how long the backend was degraded or down, in ms. */
  readonly downtimeMs?: number
}
