/**
 * Decisions the throttle answers by itself, without asking a backend.
 */
import type { Decision } from '../../types/decision.js'

/** For exempt, unlimited or disabled requests (and `onError: 'allow'`): nothing was counted, no headers are sent. */
export const UNLIMITED_DECISION: Decision = Object.freeze({
  allowed: true, limit: Infinity, remaining: Infinity, resetMs: 0, retryAfterMs: 0
})

/** For `limit: 0`: blocked, and waiting never helps. */
export function blockedDecision (windowMs: number): Decision {
  return { allowed: false, limit: 0, remaining: 0, resetMs: windowMs, retryAfterMs: -1 }
}

/** For a limit that was not charged: full capacity. */
export function untouchedDecision (limit: number): Decision {
  return { allowed: true, limit, remaining: limit, resetMs: 0, retryAfterMs: 0 }
}
