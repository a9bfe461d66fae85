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
import { BucketStrategy } from './bucket-strategy.js'
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

export class LeakyBucketWithQueue extends BucketStrategy {
  readonly name = 'leaky-bucket-with-queue'
  readonly maxDelayMs: number

  constructor (options?: LeakyBucketWithQueueOptions) {
    const opts = readOptions('LeakyBucketWithQueue', options, ['maxDelayMs'])
    const maxDelayMs = integerOption('LeakyBucketWithQueue', 'maxDelayMs', opts.maxDelayMs, 0) ?? 1000
    // The last unit of a request may start at most maxDelayMs from now: backlog + (cost-1)·perCost <= maxDelayMs·perMs.
    super((scale) => maxDelayMs * scale.perMs + scale.perCost, `local max_delay = ${maxDelayMs}
local function admit_of(per_ms, per_cost, limit) return max_delay * per_ms + per_cost end`, true)
    this.maxDelayMs = maxDelayMs
  }
}
