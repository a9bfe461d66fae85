/**
 * The shared shape of the five bucket strategies (TokenBucket, TokenBucketWithDebt, LeakyBucket,
 * LeakyBucketWithQueue, GCRA): they differ only in how much backlog they admit (`admit`, with its
 * Lua twin `admit_of`) and in whether an admitted request waits for its turn (`queue`). The exact
 * integer arithmetic lives in bucket-math.ts, beside its Lua twin.
 */
import type { Strategy, StepResult, StrategyState } from '../../types/strategy.js'
import { LUA_BUCKET, decodeBucket, refundBucket, stepBucket, type AdmitOf } from './bucket-math.js'
import { LUA_DECODE, encodeState } from './state-codec.js'

export abstract class BucketStrategy implements Strategy {
  abstract readonly name: string
  /** The Lua twin (see types/strategy.ts), with this instance's options baked in. */
  readonly lua: string
  readonly #admit: AdmitOf
  readonly #queue: boolean

  /**
   * @param admit the backlog admitted, in ticks (JS)
   * @param luaAdmit Lua defining `admit_of(per_ms, per_cost, limit)`, the same computation
   * @param queue whether an admitted request waits for its turn (`decision.delayMs`)
   */
  protected constructor (admit: AdmitOf, luaAdmit: string, queue: boolean) {
    this.#admit = admit
    this.#queue = queue
    this.lua = `${LUA_DECODE}${LUA_BUCKET}
${luaAdmit}
return function(raw, now, limit, window, cost, refund, charged_at)
  return bucket_step(raw, now, limit, window, cost, refund, charged_at, admit_of, ${queue})
end
`
  }

  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    return stepBucket(state, now, limit, windowMs, cost, this.#admit, this.#queue)
  }

  /** Gives back what the charge still holds: its cost less the drain since `chargedAt` (see heldTicks). */
  refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt = now): StepResult {
    return refundBucket(state, now, limit, windowMs, cost, chargedAt, this.#admit, this.#queue)
  }

  encode (state: StrategyState): string {
    return encodeState(state)
  }

  decode (raw: string): StrategyState | undefined {
    return decodeBucket(raw)
  }
}
