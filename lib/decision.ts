/**
 * Decisions answered without asking a backend, and the one rounding of a wait to whole seconds.
 */
import type { Decision, EscalationState } from '../types/decision.js'

/** For exempt, unlimited or disabled requests (and `onError: 'allow'`): nothing was counted, no headers are sent. */
export const UNLIMITED_DECISION: Decision = Object.freeze({
  allowed: true, limit: Infinity, remaining: Infinity, resetMs: 0, retryAfterMs: 0
})

/** For `limit: 0`: blocked, and waiting never helps. */
export function blockedDecision (windowMs: number): Decision {
  return { allowed: false, limit: 0, remaining: 0, resetMs: windowMs, retryAfterMs: -1 }
}

/** Nothing charged, full capacity: a limit left untouched, or a refund that changed nothing. */
export function untouchedDecision (limit: number): Decision {
  return { allowed: true, limit, remaining: limit, resetMs: 0, retryAfterMs: 0 }
}

/** Whole seconds of a wait, rounded up (0 for none): what headers and messages show. */
export function toSeconds (ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000)
}

/** Whole seconds until the decision's request would be allowed; -1 when it never can be. */
export function retryAfterSeconds (decision: Decision): number {
  return decision.retryAfterMs < 0 ? -1 : toSeconds(decision.retryAfterMs)
}

/** Flag bits of an escalation record as the Lua twins return it next to a decision. */
export const ESCALATION_OFFENCE = 1
export const ESCALATION_BANNED = 2

/** A decision's `escalation` from the offence count and the flag bits (see ESCALATION_OFFENCE, ESCALATION_BANNED). */
export function escalationOf (offences: number, flags: number): EscalationState {
  return { offences, offence: (flags & ESCALATION_OFFENCE) !== 0, banned: (flags & ESCALATION_BANNED) !== 0 }
}
