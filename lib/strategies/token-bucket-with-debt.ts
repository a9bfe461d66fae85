/**
 * TokenBucketWithDebt: a TokenBucket that lends. A request passes while the bucket would not fall
 * below `-maxDebt` tokens; the debt is repaid by the refill before the bucket is full again.
 * A fresh client may therefore spend `burst + maxDebt` at once, then waits for the refill.
 *
 * State: `[ms, ticks]`, the theoretical time at which the bucket is full again (see bucket-math.ts).
 * Specification: docs/strategies/token-bucket-with-debt.md.
 */
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { LUA_BUCKET, decodeBucket, refundBucket, stepBucket, type AdmitOf } from './bucket-math.js'
import { LUA_DECODE, encodeState } from './state-codec.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface TokenBucketWithDebtOptions {
  /**
   * Capacity of the bucket in units of cost (the tokens an idle client holds).
   * @default the rate's limit
   */
  burst?: number
  /**
   * How many units of cost may be lent beyond an empty bucket.
   * @default 0
   */
  maxDebt?: number
}

export class TokenBucketWithDebt implements Strategy {
  readonly name = 'token-bucket-with-debt'
  /** The configured capacity, or undefined to follow the rate's limit. */
  readonly burst: number | undefined
  readonly maxDebt: number
  /** The Lua twin (see types/strategy.ts), with this instance's options baked in. */
  readonly lua: string
  readonly #admit: AdmitOf

  constructor (options?: TokenBucketWithDebtOptions) {
    const opts = readOptions('TokenBucketWithDebt', options, ['burst', 'maxDebt'])
    this.burst = integerOption('TokenBucketWithDebt', 'burst', opts.burst, 1)
    this.maxDebt = integerOption('TokenBucketWithDebt', 'maxDebt', opts.maxDebt, 0) ?? 0
    const { burst, maxDebt } = this
    this.#admit = burst === undefined
      ? (scale, limit) => (limit + maxDebt) * scale.perCost
      : (scale) => (burst + maxDebt) * scale.perCost
    this.lua = `${LUA_DECODE}${LUA_BUCKET}
local burst, max_debt = ${burst ?? 'nil'}, ${maxDebt}
local function admit_of(per_ms, per_cost, limit) return ((burst or limit) + max_debt) * per_cost end
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
