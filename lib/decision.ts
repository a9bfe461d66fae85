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

/**
 * What a fleet override read inside the decision did to it (backends that read overrides with
 * the decision: see `EvaluateOp.overrides`):
 * - `'applied'`: an override was in force; the decision was made with its limit, window and cost;
 * - `'disabled'`: the override turns the limit off (or makes it unlimited) here: nothing charged,
 *   the request is exempt from this limit;
 * - `'shadow'`: the limit decided in shadow mode: it charged only if it allowed (and, with several
 *   limits, only if every enforcing one allowed), and its rejection must not reject the request.
 */
export interface AppliedOverride {
  readonly kind: 'applied' | 'disabled' | 'shadow'
  readonly limit: number
  readonly windowMs: number
  readonly cost: number
}

const appliedOverrides = new WeakMap<Decision, AppliedOverride>()

/** Records what an override did to a decision (the backend that read it calls this). */
export function markOverride (decision: Decision, applied: AppliedOverride): Decision {
  appliedOverrides.set(decision, applied)
  return decision
}

/** What an override read with the decision did to it; undefined when none was in force. */
export function overrideOf (decision: Decision): AppliedOverride | undefined {
  return appliedOverrides.get(decision)
}

/** Whether a decision takes part in all-or-nothing: not one an override turned off or put in shadow. */
export function enforces (decision: Decision): boolean {
  const kind = appliedOverrides.get(decision)?.kind
  return kind === undefined || kind === 'applied'
}
