/**
 * The answer of one rate-limit decision. Every strategy and every backend returns this shape,
 * computed in the same atomic step that consumed (or did not consume) the capacity.
 */
export interface Decision {
  /** Whether the request may proceed. */
  allowed: boolean
  /** The limit of the rate in force (units of cost per window). */
  limit: number
  /** Units of cost still available right after this decision: an integer in [0, limit]. */
  remaining: number
  /** Whole milliseconds until the capacity is fully restored (the window resets / the bucket refills). */
  resetMs: number
  /**
   * Whole milliseconds to wait before the same request would be allowed; 0 when allowed.
   * -1 when it can never be allowed because its cost exceeds the strategy's capacity.
   */
  retryAfterMs: number
  /**
   * Only for queueing strategies (LeakyBucketWithQueue): the request is admitted, but must wait
   * this many milliseconds for its turn before it proceeds. Absent or 0 otherwise.
   */
  delayMs?: number
  /**
   * When the backend decided, in the backend's own clock (ms since the epoch; the Redis server's
   * clock on Redis). Set by the built-in backends; a refund of this decision's charge passes it
   * back (`EvaluateOp.chargedAt`) so that only what the charge still holds is given back.
   */
  decidedAt?: number
  /**
   * Only on rejections by a limit with an escalation policy (the throttle's `escalation`
   * option): the client's offence record as this decision left it.
   */
  escalation?: EscalationState
}

/** A client's offence record, as a rejection under an escalation policy reports it. */
export interface EscalationState {
  /** Offences counted in the current period (this one included when `offence` is true). */
  offences: number
  /** Whether this rejection recorded a new offence (false while a block already in force answers). */
  offence: boolean
  /** Whether the block in force is a ban (the policy's `ban` tier). */
  banned: boolean
}
