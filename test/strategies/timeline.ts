/**
 * Random timelines for strategy tests: a rate (limit, window incl. sub-second), a start instant,
 * and steps with gaps (0 included, sometimes many windows of idleness) and costs (0 and more than
 * the capacity included).
 */
import fc from 'fast-check'
import type { Strategy, StrategyState } from '../../types/strategy.js'

export interface Step {
  gap: number
  cost: number
  /** 'hit' consumes when allowed, 'check' never consumes, 'refund' gives the cost back. */
  mode: 'hit' | 'check' | 'refund'
  /** Refunds: which earlier step or charge is given back (an index, taken modulo what there is). */
  pick: number
  /**
   * Refunds: when the charge was made. 'absent': not said (taken as now); 'now'; 'earlier': at the
   * time of the step `pick` designates; 'offset': `offset` ms before now.
   */
  charged: 'absent' | 'now' | 'earlier' | 'offset'
  /** With `charged` 'offset': ms before now; negative for a charge stamped ahead of now (a clock that went back). */
  offset: number
}

export interface Timeline {
  limit: number
  windowMs: number
  start: number
  steps: Step[]
}

export const WINDOWS = [1, 3, 7, 100, 200, 250, 500, 999, 1000, 1500, 60_000, 3_600_000, 86_400_000]

/**
 * @param options.modes the modes steps are drawn from (default: only 'hit')
 * @param options.backwards also draw negative gaps (a clock stepping back)
 */
export function timelineArbitrary (options: { modes?: Array<Step['mode']>, maxSteps?: number, backwards?: boolean } = {}): fc.Arbitrary<Timeline> {
  const modes = options.modes ?? ['hit']
  return fc.record({
    limit: fc.oneof(
      { arbitrary: fc.integer({ min: 1, max: 12 }), weight: 8 },
      { arbitrary: fc.constantFrom(0, 50, 100, 1000), weight: 1 }
    ),
    windowMs: fc.constantFrom(...WINDOWS),
    start: fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_000 + 86_400_000 * 3 })
  }).chain(({ limit, windowMs, start }) => fc.record({
    limit: fc.constant(limit),
    windowMs: fc.constant(windowMs),
    start: fc.constant(start),
    steps: fc.array(fc.record({
      gap: fc.oneof(...[
        { arbitrary: fc.constant(0), weight: 3 },
        { arbitrary: fc.integer({ min: 0, max: Math.max(1, Math.ceil(windowMs / 4)) }), weight: 5 },
        { arbitrary: fc.integer({ min: 0, max: 2 * windowMs }), weight: 3 },
        { arbitrary: fc.integer({ min: 0, max: 1_000_000_000 }), weight: 1 },
        ...(options.backwards === true ? [{ arbitrary: fc.integer({ min: -2 * windowMs, max: -1 }), weight: 2 }] : [])
      ]),
      cost: fc.oneof(
        { arbitrary: fc.constant(1), weight: 5 },
        { arbitrary: fc.constant(0), weight: 1 },
        { arbitrary: fc.integer({ min: 0, max: limit + 3 }), weight: 3 },
        { arbitrary: fc.integer({ min: limit + 1, max: limit * 3 + 5 }), weight: 1 }
      ),
      mode: fc.constantFrom(...modes),
      pick: fc.nat(),
      charged: fc.constantFrom('absent', 'now', 'earlier', 'earlier', 'offset', 'offset'),
      offset: fc.oneof(
        // Around now and the window edges: the same window, the one before, older ones, the future.
        { arbitrary: fc.integer({ min: -2 * windowMs, max: 3 * windowMs }), weight: 6 },
        { arbitrary: fc.integer({ min: 0, max: 4 }), weight: 2 },
        { arbitrary: fc.integer({ min: 0, max: 1_000_000_000 }), weight: 1 }
      )
    }), { minLength: 1, maxLength: options.maxSteps ?? 40, size: 'max' })
  }))
}

/** A stored state as a backend holds it: dropped once its TTL has passed, round-tripped through the codec. */
export class StoredState {
  #state: StrategyState | undefined
  #expiresAt = 0
  constructor (private readonly strategy: Strategy) {}

  /** The state a read at `now` sees (nothing once the TTL has passed). Does not change the store. */
  read (now: number): StrategyState | undefined {
    return this.#state !== undefined && now < this.#expiresAt ? this.#state : undefined
  }

  write (state: number[] | null, now: number, ttlMs: number): void {
    if (state === null) {
      this.#state = undefined
      return
    }
    const decoded = this.strategy.decode(this.strategy.encode(state))
    if (decoded === undefined) throw new Error(`state ${JSON.stringify(state)} does not survive its codec`)
    this.#state = decoded
    this.#expiresAt = now + ttlMs
  }

  /** The raw string a backend would hold, or undefined. */
  raw (now: number): string | undefined {
    const state = this.read(now)
    return state === undefined ? undefined : this.strategy.encode(state)
  }
}
