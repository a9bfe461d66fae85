/**
 * TokenBucketWithDebt: a TokenBucket that lends. A request passes while the bucket would not fall
 * below `-maxDebt` tokens; the debt is repaid by the refill before the bucket is full again.
 * A fresh client may therefore spend `burst + maxDebt` at once, then waits for the refill.
 *
 * State: `[ms, ticks]`, the theoretical time at which the bucket is full again (see bucket-math.ts).
 * Specification: docs/strategies/token-bucket-with-debt.md.
 */
import { BucketStrategy } from './bucket-strategy.js'
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

export class TokenBucketWithDebt extends BucketStrategy {
  readonly name = 'token-bucket-with-debt'
  /** The configured capacity, or undefined to follow the rate's limit. */
  readonly burst: number | undefined
  readonly maxDebt: number

  constructor (options?: TokenBucketWithDebtOptions) {
    const opts = readOptions('TokenBucketWithDebt', options, ['burst', 'maxDebt'])
    const burst = integerOption('TokenBucketWithDebt', 'burst', opts.burst, 1)
    const maxDebt = integerOption('TokenBucketWithDebt', 'maxDebt', opts.maxDebt, 0) ?? 0
    super(burst === undefined
      ? (scale, limit) => (limit + maxDebt) * scale.perCost
      : (scale) => (burst + maxDebt) * scale.perCost, `local burst, max_debt = ${burst ?? 'nil'}, ${maxDebt}
local function admit_of(per_ms, per_cost, limit) return ((burst or limit) + max_debt) * per_cost end`, false)
    this.burst = burst
    this.maxDebt = maxDebt
  }
}
