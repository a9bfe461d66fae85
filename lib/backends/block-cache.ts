/**
 * The block cache of a network backend (the `blockCache` option): it remembers, per key, a
 * rejected hit and its exact wait, and answers the same hit on that key in this process until the
 * wait is over, with no round trip. A client that keeps sending after a 429 then costs the shared
 * store one call per wait instead of one per request.
 *
 * Only what the store would answer the same way is answered here: a hit with the same strategy,
 * limit, window and cost as the remembered rejection, while its `retryAfterMs` has not passed since
 * the rejection arrived. Checks (`stat`, `peek`, `check`) always ask the store; rejections that
 * carry an escalation record (the store counts each offence) or a wait of -1 (never) are not
 * remembered. Refunds, deletes and resets forget the keys they touch at once. At most `maxKeys`
 * keys are held; past that the oldest remembered rejection is evicted.
 * Specification: docs/block-cache.md.
 */
import type { EvaluateMode, EvaluateOp } from '../../types/backend.js'
import type { Decision } from '../../types/decision.js'
import type { Strategy } from '../../types/strategy.js'
import { enforces } from '../decision.js'

interface Block {
  readonly strategy: Strategy
  readonly limit: number
  readonly windowMs: number
  readonly cost: number
  /** Local time at which the rejection arrived. */
  readonly at: number
  /** Local time from which the request may be allowed again. */
  readonly until: number
  readonly decision: Decision
}

export class BlockCache {
  readonly maxKeys: number
  readonly #now: () => number
  /** In insertion order: the first entry is the oldest remembered rejection. */
  readonly #blocks = new Map<string, Block>()

  constructor (maxKeys: number, now: () => number) {
    this.maxKeys = maxKeys
    this.#now = now
  }

  /** How many keys are remembered (expired ones included until they are looked at or evicted). */
  get size (): number {
    return this.#blocks.size
  }

  /**
   * The answers for a call when every op is a hit on a key blocked for that very request;
   * undefined when the store must be asked.
   */
  answer (ops: readonly EvaluateOp[], mode: EvaluateMode): Decision[] | undefined {
    if (mode !== 'hit' || this.#blocks.size === 0) return undefined
    const now = this.#now()
    let answers: Decision[] | undefined
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      const block = this.#blocks.get(op.key)
      if (block === undefined) return undefined
      if (now >= block.until) {
        this.#blocks.delete(op.key)
        return undefined
      }
      if (block.strategy !== op.strategy || block.limit !== op.limit || block.windowMs !== op.windowMs || block.cost !== op.cost) return undefined
      answers ??= new Array(ops.length)
      const elapsed = now - block.at
      const { decision } = block
      answers[i] = {
        allowed: false,
        limit: decision.limit,
        remaining: decision.remaining,
        resetMs: Math.max(1, decision.resetMs - elapsed),
        retryAfterMs: block.until - now
      }
    }
    return answers
  }

  /** Learns from the store's answers to a hit: remembers its rejections, forgets keys it allowed. */
  learn (ops: readonly EvaluateOp[], decisions: readonly Decision[]): void {
    let now: number | undefined
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      const decision = decisions[i]
      if (decision === undefined) continue
      // A rejection an override put in shadow rejected nothing: it must not be answered again here.
      if (decision.allowed || decision.retryAfterMs <= 0 || decision.escalation !== undefined || op.cost <= 0 || !enforces(decision)) {
        if (this.#blocks.size > 0) this.#blocks.delete(op.key)
        continue
      }
      now ??= this.#now()
      this.#blocks.delete(op.key)
      if (this.#blocks.size >= this.maxKeys) this.#evictOldest()
      this.#blocks.set(op.key, {
        strategy: op.strategy,
        limit: op.limit,
        windowMs: op.windowMs,
        cost: op.cost,
        at: now,
        until: now + decision.retryAfterMs,
        decision
      })
    }
  }

  /** Forgets the given keys (a refund, a delete or a write changed what the store would answer). */
  forget (keys: Iterable<string>): void {
    if (this.#blocks.size === 0) return
    for (const key of keys) this.#blocks.delete(key)
  }

  /** Forgets every key that starts with `prefix`. */
  forgetPrefix (prefix: string): void {
    for (const key of this.#blocks.keys()) if (key.startsWith(prefix)) this.#blocks.delete(key)
  }

  /** Forgets everything. */
  clear (): void {
    this.#blocks.clear()
  }

  #evictOldest (): void {
    // Expired entries first would need a scan; the oldest inserted is the one closest to expiry
    // for equal waits, and any entry is safe to drop (the store is asked again).
    const oldest = this.#blocks.keys().next()
    if (oldest.done !== true) this.#blocks.delete(oldest.value)
  }
}
