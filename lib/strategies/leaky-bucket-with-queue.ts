/**
 * LeakyBucketWithQueue: a leaky bucket that queues instead of rejecting, like nginx `limit_req`
 * with a burst and no `nodelay`. Units of cost leave the queue evenly, one per windowMs / limit.
 * A request that arrives while others are ahead is admitted with `decision.delayMs`, the time
 * until the turn of its last unit of cost, as long as that wait is at most `maxDelayMs`; otherwise
 * it is rejected (and queues nothing) with the exact time after which it would be admitted.
 * The enforce hook holds the request for `delayMs`; if the client disconnects meanwhile, the
 * throttle refunds, which gives the slot back.
 *
 * State: `[ms, ticks]`, the time at which the queue has drained empty (see bucket-math.ts).
 * Specification: docs/strategies/leaky-bucket-with-queue.md.
 */
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { LUA_BUCKET, decodeBucket, refundBucket, stepBucket, type AdmitOf } from './bucket-math.js'
import { LUA_DECODE, encodeState } from './state-codec.js'
import { integerOption, readOptions } from './strategy-options.js'

export interface LeakyBucketWithQueueOptions {
  /**
   * The longest a request may be held waiting for its turn, in ms. This bounds the queue per key:
   * at most `floor(maxDelayMs / (windowMs / limit)) + 1` unit requests are admitted at once.
   * The default keeps held sockets short: a client, proxy or load balancer rarely waits longer
   * without retrying, and a held request costs a socket and memory on the server.
   * 0 means no queue (a plain LeakyBucket without burst).
   * @default 1000
   */
  maxDelayMs?: number
}

export class LeakyBucketWithQueue implements Strategy {
  readonly name = 'leaky-bucket-with-queue'
  readonly maxDelayMs: number
  /** The Lua twin (see types/strategy.ts), with this instance's options baked in. */
  readonly lua: string
  readonly #admit: AdmitOf

  constructor (options?: LeakyBucketWithQueueOptions) {
    const opts = readOptions('LeakyBucketWithQueue', options, ['maxDelayMs'])
    const maxDelayMs = integerOption('LeakyBucketWithQueue', 'maxDelayMs', opts.maxDelayMs, 0) ?? 1000
    this.maxDelayMs = maxDelayMs
    // The last unit of a request may start at most maxDelayMs from now: backlog + (cost-1)·perCost <= maxDelayMs·perMs.
    this.#admit = (scale) => maxDelayMs * scale.perMs + scale.perCost
    this.lua = `${LUA_DECODE}${LUA_BUCKET}
local max_delay = ${maxDelayMs}
local function admit_of(per_ms, per_cost, limit) return max_delay * per_ms + per_cost end
return function(raw, now, limit, window, cost, refund)
  return bucket_step(raw, now, limit, window, cost, refund, admit_of, true)
end
`
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    return stepBucket(state, now, limit, windowMs, cost, this.#admit, true)
  }

  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    return refundBucket(state, now, limit, windowMs, cost, this.#admit, true)
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  decode (raw: string): StrategyState | undefined {
    return decodeBucket(raw)
  }
}
