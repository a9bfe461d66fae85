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
import { BucketStrategy } from './bucket-strategy.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface GCRAOptions {
  /**
   * How many units of cost an idle client may send at once. 1 means no burst: evenly spaced requests.
   * A request costing more than `burst` can never pass (retryAfterMs -1).
   * @default 1
   */
  burst?: number
}

export class GCRA extends BucketStrategy {
  readonly name = 'gcra'
  readonly burst: number

  constructor (options?: GCRAOptions) {
    const opts = readOptions('GCRA', options, ['burst'])
    const burst = integerOption('GCRA', 'burst', opts.burst, 1) ?? 1
    super((scale) => burst * scale.perCost, `local burst = ${burst}
local function admit_of(per_ms, per_cost, limit) return burst * per_cost end`, false)
    this.burst = burst
  }
}
