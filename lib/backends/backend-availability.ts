/**
 * A backend's availability: where it stands (BackendState), the transitions operators should see
 * (degraded, down, recovered: each reported once when it happens, never once per call), the last
 * failure seen since it last answered, and the background reconnection of a backend that started
 * degraded. ThrottleBackend owns one; the guard reports every call's outcome to it.
 */
import type { BackendState, BackendTransition } from '../../types/backend.js'
import { BackendUnavailableError } from '../errors.js'

/** Receives a backend's transitions (see `ThrottleBackend.onTransition`). */
export type TransitionListener = (transition: BackendTransition) => void

/**
 * Pause before each background attempt: 100 ms, 200 ms, then every 250 ms, so a backend that
 * comes back is used again well within a second, without a tight loop while it stays away.
 */
const RETRY_DELAYS_MS: readonly number[] = [100, 200, 250]

export class Availability {
  #state: BackendState = 'idle'
  #lastError: Error | undefined
  /** When the current outage began (performance.now()), for the downtime of `'recovered'`. */
  #since = 0
  #retries = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  readonly #listeners = new Set<TransitionListener>()

  get state (): BackendState {
    return this.#state
  }

  /** The last failure seen since the backend last answered. */
  get lastError (): Error | undefined {
    return this.#lastError
  }

  /** Adds a listener; returns the function that removes it. */
  listen (listener: TransitionListener): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** A connection attempt begins. A degraded backend stays degraded (its calls keep failing at once) until one succeeds. */
  connecting (): void {
    if (this.#state === 'idle' || this.#state === 'closed') this.#state = 'connecting'
  }

  /** A connection attempt failed. `'connecting'` goes back to `'idle'`: nothing was promised yet. */
  connectFailed (error: Error): void {
    this.#lastError = error
    if (this.#state === 'connecting') this.#state = 'idle'
  }

  /** The backend answered (a connection, a call or a probe succeeded). */
  succeeded (): void {
    const was = this.#state
    this.#state = 'up'
    this.#lastError = undefined
    this.#retries = 0
    if (was === 'degraded' || was === 'down') this.#emit({ type: 'recovered', downtimeMs: Math.round(performance.now() - this.#since) })
  }

  /** A call failed for a reason of the backend's (unreachable, unanswered): an `'up'` backend is down from now. */
  failed (error: Error): void {
    this.#lastError = error
    if (this.#state !== 'up') return
    this.#state = 'down'
    this.#since = performance.now()
    this.#emit({ type: 'down', error })
  }

  /** The backend could not connect at start and the app goes on without it. */
  degrade (error: Error): void {
    this.#lastError = error
    // Only a backend that never connected since it was (re)started; one that was up reports 'down' instead.
    if (this.#state !== 'idle' && this.#state !== 'connecting') return
    this.#state = 'degraded'
    this.#since = performance.now()
    this.#emit({ type: 'degraded', error })
  }

  /**
   * Runs `attempt` after the next backoff pause, and again after each failure, while the backend
   * stays degraded. One schedule at a time; the timer never keeps the process alive.
   */
  retry (attempt: () => Promise<void>): void {
    if (this.#timer !== undefined || this.#state !== 'degraded') return
    const delay = RETRY_DELAYS_MS[Math.min(this.#retries++, RETRY_DELAYS_MS.length - 1)]
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      if (this.#state !== 'degraded') return
      attempt().then(() => {}, () => { this.retry(attempt) })
    }, delay)
    this.#timer.unref()
  }

  /** The backend was closed: no more attempts, no more transitions until it is started again. */
  close (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#retries = 0
    this.#state = 'closed'
  }

  /** What a call on a degraded backend fails with, at once. */
  unavailableError (backendName: string): Error {
    const cause = this.#lastError
    return new BackendUnavailableError(backendName, cause?.message ?? 'no connection yet', cause === undefined ? undefined : { cause })
  }

  #emit (transition: BackendTransition): void {
    for (const listener of this.#listeners) {
      try {
        listener(transition)
      } catch {
        // A listener (a logger) that throws must not break the call that changed the state.
      }
    }
  }
}
