/**
 * CircuitBreaker: stops calling a failing backend. Closed, it counts consecutive failures; at
 * `failureThreshold` it opens and every call is refused at once (the caller goes to its fallback
 * without touching the failing backend). After `recoveryTimeMs` it is half-open: up to
 * `halfOpenProbes` calls go through as probes; when that many succeed it closes, and any probe
 * failure opens it again for another `recoveryTimeMs`. Process-local and synchronous: no lock.
 */
import { EventEmitter } from 'node:events'
import { systemClock, type Clock } from '../clock.js'
import { invalidOption } from '../errors.js'

export type BreakerState = 'closed' | 'open' | 'half-open'

/** What `onStateChange` listeners and the `'stateChange'` event receive. */
export interface BreakerStateChange {
  from: BreakerState
  to: BreakerState
  /** Why: `'failures'`, `'probe-failed'`, `'recovery-time'`, `'probes-succeeded'`, `'forced'`. */
  reason: string
  /** Consecutive failures counted when the change happened. */
  failures: number
  /** When it happened (the breaker's clock). */
  at: number
}

export interface CircuitBreakerOptions {
  /**
   * Consecutive failures that open the breaker.
   * @default 5
   */
  failureThreshold?: number
  /**
   * How long the breaker stays open before it lets probes through, in ms.
   * @default 30_000
   */
  recoveryTimeMs?: number
  /**
   * Calls let through while half-open; the breaker closes when that many have succeeded.
   * @default 1
   */
  halfOpenProbes?: number
  /**
   * Called on every state change (the `'stateChange'` event carries the same object).
   * @default none
   */
  onStateChange?: (change: BreakerStateChange) => void
  /**
   * Time source; inject a ManualClock in tests.
   * @default systemClock
   */
  clock?: Clock
}

/** A permit for one call: whether it may go to the primary, and whether it is a probe. */
export type BreakerPermit = 0 | 1 | 2
const REFUSED: BreakerPermit = 0
const CALL: BreakerPermit = 1
const PROBE: BreakerPermit = 2

export class CircuitBreaker extends EventEmitter<{ stateChange: [BreakerStateChange] }> {
  readonly failureThreshold: number
  readonly recoveryTimeMs: number
  readonly halfOpenProbes: number
  readonly #clock: Clock
  #state: BreakerState = 'closed'
  #failures = 0
  #openedAt = 0
  #probesInFlight = 0
  #probeSuccesses = 0

  constructor (options: CircuitBreakerOptions = {}) {
    super()
    if (options === null || typeof options !== 'object') invalidOption('CircuitBreaker options', 'an object', options)
    const { failureThreshold = 5, recoveryTimeMs = 30_000, halfOpenProbes = 1, onStateChange, clock = systemClock, ...rest } = options
    // A misspelt option must not leave the breaker on a default silently.
    const unknown = Object.keys(rest)[0]
    if (unknown !== undefined) invalidOption(unknown, 'a known CircuitBreaker option (failureThreshold, recoveryTimeMs, halfOpenProbes, onStateChange, clock)', (rest as Record<string, unknown>)[unknown])
    if (!Number.isSafeInteger(failureThreshold) || failureThreshold < 1) invalidOption('failureThreshold', 'a positive integer', failureThreshold)
    if (!Number.isFinite(recoveryTimeMs) || recoveryTimeMs < 0) invalidOption('recoveryTimeMs', 'a finite number of ms >= 0', recoveryTimeMs)
    if (!Number.isSafeInteger(halfOpenProbes) || halfOpenProbes < 1) invalidOption('halfOpenProbes', 'a positive integer', halfOpenProbes)
    if (onStateChange !== undefined && typeof onStateChange !== 'function') invalidOption('onStateChange', 'a function', onStateChange)
    if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') invalidOption('clock', 'an object with now()', clock)
    this.failureThreshold = failureThreshold
    this.recoveryTimeMs = recoveryTimeMs
    this.halfOpenProbes = halfOpenProbes
    this.#clock = clock
    if (onStateChange !== undefined) this.on('stateChange', onStateChange)
  }

  /** The current state. An open breaker whose recovery time has passed reports `'half-open'`. */
  get state (): BreakerState {
    if (this.#state === 'open' && this.#clock.now() - this.#openedAt >= this.recoveryTimeMs) return 'half-open'
    return this.#state
  }

  /** Consecutive failures counted so far. */
  get failures (): number {
    return this.#failures
  }

  /**
   * Asks to call the protected backend. Returns 0 when the call must not be made (open, or
   * half-open with every probe slot taken), otherwise a permit to hand back to `success`/`failure`.
   */
  acquire (): { permit: BreakerPermit, change: BreakerStateChange | undefined } {
    let change: BreakerStateChange | undefined
    if (this.#state === 'closed') return { permit: CALL, change }
    if (this.#state === 'open') {
      if (this.#clock.now() - this.#openedAt < this.recoveryTimeMs) return { permit: REFUSED, change }
      change = this.#move('half-open', 'recovery-time')
    }
    if (this.#probesInFlight + this.#probeSuccesses >= this.halfOpenProbes) return { permit: REFUSED, change }
    this.#probesInFlight++
    return { permit: PROBE, change }
  }

  /** Reports a successful call. Returns the state change it caused, if any. */
  success (permit: BreakerPermit): BreakerStateChange | undefined {
    if (permit === PROBE) {
      if (this.#state !== 'half-open') return undefined
      this.#probesInFlight--
      this.#probeSuccesses++
      if (this.#probeSuccesses >= this.halfOpenProbes) return this.#move('closed', 'probes-succeeded')
      return undefined
    }
    if (permit === CALL && this.#state === 'closed') this.#failures = 0
    return undefined
  }

  /** Reports a failed call. Returns the state change it caused, if any. */
  failure (permit: BreakerPermit): BreakerStateChange | undefined {
    if (permit === PROBE) {
      if (this.#state !== 'half-open') return undefined
      this.#failures++
      return this.#move('open', 'probe-failed')
    }
    if (permit !== CALL || this.#state !== 'closed') return undefined
    this.#failures++
    if (this.#failures >= this.failureThreshold) return this.#move('open', 'failures')
    return undefined
  }

  /** Opens the breaker now (maintenance, a known outage). */
  forceOpen (): void {
    this.#move('open', 'forced')
  }

  /** Closes the breaker now and forgets the failures. */
  forceClose (): void {
    this.#move('closed', 'forced')
  }

  #move (to: BreakerState, reason: string): BreakerStateChange | undefined {
    const from = this.#state
    const now = this.#clock.now()
    if (to === 'open') this.#openedAt = now
    if (to === 'closed') this.#failures = 0
    this.#probesInFlight = 0
    this.#probeSuccesses = 0
    this.#state = to
    if (from === to) return undefined
    const change: BreakerStateChange = { from, to, reason, failures: this.#failures, at: now }
    this.emit('stateChange', change)
    return change
  }
}
