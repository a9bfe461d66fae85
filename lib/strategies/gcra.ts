/**
 * GCRA (generic cell rate algorithm): every unit of cost is due one emission interval
 * (windowMs / limit) after the previous one. A request passes when it conforms, cost included:
 * its theoretical arrival time, pushed by its whole cost, lies at most `burst` intervals ahead.
 * With the default burst of 1 requests are evenly spaced, one per windowMs / limit; `burst` lets
 * an idle client send that many at once.
 *
 * State: `[ms, ticks]`, the theoretical arrival time (TAT) of the next request (see bucket-math.ts).
 * Specification: docs/strategies/gcra.md.
 */
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { LUA_BUCKET, decodeBucket, refundBucket, stepBucket, type AdmitOf } from './bucket-math.js'
import { LUA_DECODE, encodeState } from './state-codec.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface GCRAOptions {
  /**
   * How many units of cost an idle client may send at once. 1 means no burst: evenly spaced requests.
   * A request costing more than `burst` can never pass (retryAfterMs -1).
   * @default 1
   */
  burst?: number
}

export class GCRA implements Strategy {
  readonly name = 'gcra'
  readonly burst: number
  /** The Lua twin (see types/strategy.ts), with this instance's options baked in. */
  readonly lua: string
  readonly #admit: AdmitOf

  constructor (options?: GCRAOptions) {
    const opts = readOptions('GCRA', options, ['burst'])
    const burst = integerOption('GCRA', 'burst', opts.burst, 1) ?? 1
    this.burst = burst
    this.#admit = (scale) => burst * scale.perCost
    this.lua = `${LUA_DECODE}${LUA_BUCKET}
local burst = ${burst}
local function admit_of(per_ms, per_cost, limit) return burst * per_cost end
return function(raw, now, limit, window, cost, refund)
  return bucket_step(raw, now, limit, window, cost, refund, admit_of, false)
end
`
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    return stepBucket(state, now, limit, windowMs, cost, this.#admit, false)
  }

  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    return refundBucket(state, now, limit, windowMs, cost, this.#admit, false)
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  decode (raw: string): StrategyState | undefined {
    return decodeBucket(raw)
  }
}
