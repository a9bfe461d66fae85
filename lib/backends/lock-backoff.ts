/**
 * The wait of every built-in lock: try, and while the lock is held and time is left, pause and
 * try again. Pauses double from `firstPauseMs` up to `maxPauseMs`, each drawn at random between
 * one and two pauses so waiters on one lock do not retry in lockstep, and never past the timeout.
 */
import { sleep } from '../clock.js'

export interface BackoffOptions {
  /** Retry until `timeoutMs` has passed; `false` answers after the first try. */
  readonly blocking: boolean
  /** How long a blocking acquisition keeps trying, in ms. */
  readonly timeoutMs: number
  /**
   * The first pause in ms.
   * @default 1
   */
  readonly firstPauseMs?: number
  /**
   * The longest pause in ms (before jitter).
   * @default 20
   */
  readonly maxPauseMs?: number
}

/** Resolves true once `tryOnce` took the lock, false when it is still held at the timeout (or at once when not blocking). */
export async function acquireWithBackoff (tryOnce: () => boolean | Promise<boolean>, options: BackoffOptions): Promise<boolean> {
  const { blocking, timeoutMs, firstPauseMs = 1, maxPauseMs = 20 } = options
  const deadline = performance.now() + timeoutMs
  let pause = firstPauseMs
  for (;;) {
    if (await tryOnce()) return true
    const left = deadline - performance.now()
    if (!blocking || left <= 0) return false
    await sleep(Math.min(left, pause + Math.random() * pause))
    pause = Math.min(pause * 2, maxPauseMs)
  }
}
