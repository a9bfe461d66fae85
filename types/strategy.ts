/**
 * The strategy contract: a strategy is a value. Its `step` is a pure transition, backends run it
 * atomically (InMemory synchronously on its map, Redis through the Lua twin in one round trip,
 * custom backends under a lock). Strategies and backends never import each other; they meet here.
 */
import type { Decision } from './decision.js'

/**
 * A strategy's stored state: a short list of finite numbers (counts, timestamps in ms).
 * States are plain numbers so that every backend can store them compactly and the Lua twin
 * reads the very same encoding.
 */
export type StrategyState = readonly number[]

/** The result of one transition. */
export interface StepResult {
  /** The state to store, or `null` to delete the key. Only written when the backend commits. */
  state: number[] | null
  /** How long the stored state must live, in whole milliseconds (>= 1). */
  ttlMs: number
  /** The decision for this request. */
  decision: Decision
  /**
   * Store `state` even though the call does not commit (a `'hit'` this op rejected, or that
   * another limit of the call rejected): how an escalation policy records an offence in the same
   * atomic operation that decided it. Only for rejections; the limit's own capacity in `state`
   * must be what it was (rejected requests consume nothing). Absent: false.
   */
  keep?: boolean
}

/**
 * Fast path for strategies that can be decided from plain window counters (FixedWindow,
 * SlidingWindowCounter): a backend with an atomic increment (Memcached) uses it instead of
 * read-modify-write. Counter keys are `<key>:<windowId>` where `windowId = floor(now / windowMs)`.
 */
export interface WindowCounterPlan {
  /** Window offsets whose counters the decision reads: 0 = current, -1 = previous. The current one comes first. */
  readonly windows: readonly number[]
  /** How long the current window's counter must live, in ms, given `now`. */
  ttlMs(now: number, windowMs: number): number
  /**
   * Decides from the counter values. `counts[0]` is the current window's counter *after* adding
   * `cost`; the others are read as they are. When the decision is a rejection the backend takes
   * `cost` back off the current counter, so rejected requests consume nothing.
   */
  decide(counts: readonly number[], now: number, limit: number, windowMs: number, cost: number): Decision
}

/** A rate-limiting algorithm. Implementations must be immutable after construction. */
export interface Strategy {
  /** Kebab-case name used in docs and messages, e.g. `'fixed-window'`. */
  readonly name: string
  /**
   * `true` when the stored state holds only what was used, never the limit, so requests on one
   * key may be decided against different limits (priority classes, each with its share of one
   * budget). Strategies whose state is scaled by the limit (buckets, GCRA) leave it out.
   */
  readonly stateIndependentOfLimit?: boolean
  /**
   * The pure transition: given the stored state (undefined when absent or expired), the time,
   * the rate and the cost, returns the next state and the decision. A rejection must return a
   * state equivalent to the input (rejected requests consume nothing); `cost` 0 never consumes.
   */
  step(state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, bounds?: readonly number[]): StepResult
  /**
   * Gives back `cost` units consumed by a charge made at `chargedAt` (the backend's clock; `now`
   * when absent), for reservations, queues and multi-limit rollback. Only what that charge still
   * holds comes back: nothing for a window that has ended, never above capacity. Each strategy's
   * page in docs/strategies states its rule. Strategies for which a refund is meaningless may
   * leave it out; the throttle then refunds nothing.
   */
  refund?(state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt?: number, bounds?: readonly number[]): StepResult
  /** Encodes a state for backends that store strings. */
  encode(state: StrategyState): string
  /** Decodes a stored string; returns undefined for anything malformed (treated as no state). */
  decode(raw: string): StrategyState | undefined
  /**
   * The Lua twin of `step` (and `refund`), for Redis. A chunk that returns a function
   * `function(raw, now, limit, window, cost, refund, charged_at, bounds) -> new_raw | false, ttl_ms, allowed (0/1), remaining, reset_ms, retry_after_ms [, delay_ms [, keep, offences, flags]]`
   * where `raw` is the stored string (or false), `new_raw` the string to store (false deletes),
   * `refund` is 1 for a refund (then `charged_at` is the charge's moment, equal to `now` when the
   * caller gave none), and the optional `delay_ms` is the decision's `delayMs` (queueing
   * strategies; absent means 0). `keep` (1 or 0) is StepResult's `keep`; `offences` and `flags`
   * (1 = offence, 2 = banned) are the decision's `escalation`, returned only by escalation
   * policies (absent or -1 otherwise). `bounds` is the op's `bounds` as a Lua table of numbers
   * (nil when the op has none). It must compute exactly what `step`/`refund` compute.
   */
  readonly lua: string
  /** Optional counter fast path; see WindowCounterPlan. */
  readonly counter?: WindowCounterPlan
  /**
   * When true, an admitted request holds what it charged only while it is in flight: the Fastify
   * hook gives the charge back when the response ends (sent, failed, or the client gone). The
   * Concurrency strategy sets it; outside the hook (`throttle.hit()`), release with a
   * reservation's `refund()`.
   */
  readonly heldUntilResponse?: boolean
  /**
   * For strategies held until the response (Concurrency): how long the Fastify hook lets a request
   * refused by this strategy wait for capacity, in ms, deciding it again when some is given back.
   * Absent or 0: refused at once.
   */
  readonly maxWaitMs?: number
  /**
   * For strategies whose windows are calendar periods of varying length (CalendarQuota): how the
   * host computes the period bounds the op carries to `step`, `refund` and the Lua twin (which
   * cannot compute time zones). Absent for fixed-length windows.
   */
  readonly periods?: PeriodPlan
}

/** How the host computes a calendar strategy's period bounds (see `Strategy.periods`). */
export interface PeriodPlan {
  /** The anchor of a request's own cycle (e.g. its billing day), sync or async; absent when every client shares the strategy's. */
  readonly anchorOf?: (request: any) => unknown
  /**
   * Five ascending period boundaries (ms) around `now`, `now` in the middle period `[b2, b3)`,
   * for the cycle anchored at `anchor` (what `anchorOf` returned; absent: the strategy's own).
   * The step decides in the period holding the backend's own clock, among the inner three.
   */
  bounds(now: number, anchor?: unknown): number[]
}

/**
 * A strategy as plain data, so another process can build the same strategy: a built-in class by
 * its exported name with its options (an escalation with the strategy it wraps), or any other
 * strategy by its `name`, which the other process must know an instance of.
 */
export type StrategySpec =
  | { readonly kind: 'built-in', readonly class: string, readonly options: Readonly<Record<string, unknown>> }
  | { readonly kind: 'escalation', readonly strategy: StrategySpec, readonly policy: unknown }
  | { readonly kind: 'named', readonly name: string }

/** Turns strategies into specs and back (the strategies room provides it; process-spanning backends use it). */
export interface StrategyCodec {
  /** The spec of `strategy`. */
  describe(strategy: Strategy): StrategySpec
  /** The strategy `spec` describes; a `'named'` spec is looked up in `known` by name. Throws a coded error for a spec it cannot build. */
  revive(spec: StrategySpec, known: ReadonlyMap<string, Strategy>): Strategy
}
