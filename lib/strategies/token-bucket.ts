/**
 * TokenBucket: a bucket of `burst` tokens (default: the rate's limit) refilled continuously at
 * `limit` tokens per window. A request of cost c takes c tokens, or is rejected and takes nothing.
 * A fresh client may spend the whole burst at once.
 *
 * State: `[ms, ticks]`, the theoretical time at which the bucket is full again (see bucket-math.ts),
 * so refill is exact integer arithmetic, never fractional tokens.
 * Specification: docs/strategies/token-bucket.md.
 */
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { LUA_BUCKET, decodeBucket, refundBucket, stepBucket, type AdmitOf } from './bucket-math.js'
import { LUA_DECODE, encodeState } from './state-codec.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface TokenBucketOptions {
  /**
   * Capacity of the bucket in units of cost: how much a client that has been idle may spend at once.
   * @default the rate's limit
   */
  burst?: number
}

export class TokenBucket implements Strategy {
  readonly name = 'token-bucket'
  /** The configured capacity, or undefined to follow the rate's limit. */
  readonly burst: number | undefined
  /** The Lua twin (see types/strategy.ts), with this instance's options baked in. */
  readonly lua: string
  readonly #admit: AdmitOf

  constructor (options?: TokenBucketOptions) {
    const opts = readOptions('TokenBucket', options, ['burst'])
    this.burst = integerOption('TokenBucket', 'burst', opts.burst, 1)
    const burst = this.burst
    this.#admit = burst === undefined
      ? (scale, limit) => limit * scale.perCost
      : (scale) => burst * scale.perCost
    this.lua = `${LUA_DECODE}${LUA_BUCKET}
local burst = ${burst ?? 'nil'}
local function admit_of(per_ms, per_cost, limit) return (burst or limit) * per_cost end
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
