/**
 * TokenBucket: a bucket of `burst` tokens (default: the rate's limit) refilled continuously at
 * `limit` tokens per window. A request of cost c takes c tokens, or is rejected and takes nothing.
 * A fresh client may spend the whole burst at once.
 *
 * State: `[ms, ticks]`, the theoretical time at which the bucket is full again (see bucket-math.ts),
 * so refill is exact integer arithmetic, never fractional tokens.
 * Specification: docs/strategies/token-bucket.md.
 */
import { BucketStrategy } from './bucket-strategy.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface TokenBucketOptions {
  /**
   * Capacity of the bucket in units of cost: how much a client that has been idle may spend at once.
   * @default the rate's limit
   */
  burst?: number
}

export class TokenBucket extends BucketStrategy {
  readonly name = 'token-bucket'
  /** The configured capacity, or undefined to follow the rate's limit. */
  readonly burst: number | undefined

  constructor (options?: TokenBucketOptions) {
    const opts = readOptions('TokenBucket', options, ['burst'])
    const burst = integerOption('TokenBucket', 'burst', opts.burst, 1)
    super(burst === undefined
      ? (scale, limit) => limit * scale.perCost
      : (scale) => burst * scale.perCost, `local burst = ${burst ?? 'nil'}
local function admit_of(per_ms, per_cost, limit) return (burst or limit) * per_cost end`, false)
    this.burst = burst
  }
}
