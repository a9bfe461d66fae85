/**
 * LeakyBucket (as a meter): each request pours its cost into a bucket of capacity `burst`
 * that leaks `limit` units per window; a request that would overflow it is rejected and pours
 * nothing. With the default capacity of 1 there is no burst: requests are evenly spaced, one per
 * windowMs / limit. Decisions are those of GCRA with the same burst (the two are equivalent);
 * LeakyBucket is the name users of the meter model look for.
 *
 * State: `[ms, ticks]`, the time at which the bucket has leaked empty (see bucket-math.ts), so the
 * leak is exact integer arithmetic, never a fractional level.
 * Specification: docs/strategies/leaky-bucket.md.
 */
import { BucketStrategy } from './bucket-strategy.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface LeakyBucketOptions {
  /**
   * How many units of cost an idle client may send at once. 1 means no burst: evenly spaced requests.
   * A request costing more than `burst` can never pass (retryAfterMs -1).
   * @default 1
   */
  burst?: number
}

export class LeakyBucket extends BucketStrategy {
  readonly name = 'leaky-bucket'
  readonly burst: number

  constructor (options?: LeakyBucketOptions) {
    const opts = readOptions('LeakyBucket', options, ['burst'])
    const burst = integerOption('LeakyBucket', 'burst', opts.burst, 1) ?? 1
    super((scale) => burst * scale.perCost, `local burst = ${burst}
local function admit_of(per_ms, per_cost, limit) return burst * per_cost end`, false)
    this.burst = burst
  }
}
