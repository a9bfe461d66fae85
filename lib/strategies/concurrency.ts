/**
 * Concurrency: at most `limit` units of cost in flight at once. A request of cost c takes c slots
 * when they are free, or is rejected and takes nothing; its slots are a charge the request holds
 * until its response ends (the hook gives them back when the response finishes, fails, or the
 * client goes away).
 *
 * Each slot is a lease: it lapses on its own `windowMs` after it was taken (the rate's window is
 * the lease), so a process that crashes with requests in flight cannot leak capacity for longer.
 * That is exactly a log of taken slots, `(takenAt, cost)` pairs, where a slot counts while
 * `takenAt + windowMs > now` and a release takes the charge's own entry (stamped `takenAt`) off
 * the log: the SlidingWindowLog transition, whose Lua twin it shares. What differs is the charge's
 * life: `heldUntilResponse`.
 * Specification: docs/strategies/concurrency.md.
 */
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { SlidingWindowLog } from './sliding-window-log.js'
import { integerOption, readOptions } from './strategy-options.js'

const slots = new SlidingWindowLog()

export interface ConcurrencyOptions {
  /**
   * How long a request that finds no free slot waits for one before it is refused, in ms. Waiting
   * requests queue per key in arrival order within a process, and are decided again when a slot
   * of this process is given back, or by polling (10 ms doubling to 200 ms) for slots of other
   * processes; a client that goes away leaves the queue. Only in the Fastify hook: `throttle.hit()`
   * answers at once.
   * @default 0 (refused at once)
   */
  maxWaitMs?: number
}

export class Concurrency implements Strategy {
  readonly name = 'concurrency'
  readonly stateIndependentOfLimit = true
  /** An admitted request holds its slots until its response ends. */
  readonly heldUntilResponse = true
  readonly lua = slots.lua
  /** How long a request refused for want of a slot waits for one in the hook, in ms; 0: refused at once. */
  readonly maxWaitMs: number

  constructor (options?: ConcurrencyOptions) {
    const read = readOptions('Concurrency', options, ['maxWaitMs'])
    this.maxWaitMs = integerOption('Concurrency', 'maxWaitMs', read.maxWaitMs, 0) ?? 0
  }

  /** Takes `cost` slots if that many are free (leases taken within the last `windowMs` hold theirs). */
  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    return slots.step(state, now, limit, windowMs, cost)
  }

  /** Releases the slots of the charge taken at `chargedAt`; a lease that has lapsed holds nothing. */
  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt = now): StepResult {
    return slots.refund(state, now, limit, windowMs, cost, chargedAt)
  }

  encode (state: StrategyState): string {
    return slots.encode(state)
  }

  decode (raw: string): StrategyState | undefined {
    return slots.decode(raw)
  }
}
