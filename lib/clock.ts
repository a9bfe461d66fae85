/**
 * The time source. Strategies never read the time themselves: backends pass `now` in, so tests
 * can drive time by hand and shared backends can use their server's clock.
 */

/** Anything that tells the time in whole milliseconds since the Unix epoch. */
export interface Clock {
  now(): number
}

/**
 * The wall clock. Windows are aligned to the epoch so every process agrees on them. `Date.now` is
 * looked up on every call, so tools that replace it (`node:test` mock timers, fake timers) move
 * the limiter's time as well.
 */
export const systemClock: Clock = Object.freeze({ now: () => Date.now() })

/** A clock that only moves when told to. For tests and simulations. */
export class ManualClock implements Clock {
  #now: number

  /** @param start the starting time in ms (default: 1 700 000 000 000, a fixed instant) */
  constructor (start = 1_700_000_000_000) {
    this.#now = start
  }

  now (): number {
    return this.#now
  }

  /** Moves time forward (or backward, with a negative value) by `ms`. */
  advance (ms: number): void {
    this.#now += ms
  }

  /** Sets the time. */
  set (ms: number): void {
    this.#now = ms
  }
}

/** Resolves after `ms` milliseconds (at once for 0 or less). */
export async function sleep (ms: number): Promise<void> {
  if (ms <= 0) return
  await new Promise<void>((resolve) => { setTimeout(resolve, ms) })
}
