/**
 * Charges as values. Every admitted decision that consumed capacity is a charge: the backend that
 * holds it, the op as it was charged (key, strategy, rate, cost) and the moment it was made in
 * that backend's clock. Giving a charge back sends exactly that op to exactly that backend, with
 * the moment, so each strategy returns only what the charge still holds (nothing for a window
 * that has ended).
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateOp } from '../../types/backend.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import { UNLIMITED_DECISION } from '../decision.js'

/** What one admitted decision took. */
export interface Charge {
  /** Where the charge lives (the limit's backend, or the fallback that answered for it). */
  readonly backend: ThrottleBackend
  /** What was charged: key, strategy, limit, window and cost. */
  readonly op: EvaluateOp
  /** When, in the backend's clock (`decision.decidedAt`); undefined when the backend did not say. */
  readonly chargedAt: number | undefined
}

/**
 * Decisions decided on another backend than their limit's own (a failover, an `onError` handler's
 * `context.evaluate(backend)`), so that their charges are given back where they were made.
 */
const answeredElsewhere = new WeakMap<Decision, ThrottleBackend>()

export function recordAnsweredBy (decisions: readonly Decision[], backend: ThrottleBackend): void {
  for (const decision of decisions) answeredElsewhere.set(decision, backend)
}

/** Allowed decisions that no backend made: an `onError` handler's own answer. */
const madeByHandler = new WeakSet<Decision>()

export function recordMadeByHandler (decision: Decision): void {
  madeByHandler.add(decision)
}

/**
 * Whether a decision answered on its own (one limit, or one limit's error policy) consumed
 * capacity in `'hit'` mode: an admission a backend made. Fail-open answers and a handler's own
 * decisions charged nothing.
 */
export function consumed (decision: Decision): boolean {
  return decision.allowed && decision !== UNLIMITED_DECISION && !madeByHandler.has(decision)
}

/**
 * The charge an admitted decision made on `backend` (or wherever it was answered). A queued
 * admission takes effect at its turn (`decidedAt + delayMs`): a client that leaves before it gets
 * its whole place back.
 */
export function chargeOf (backend: ThrottleBackend, op: EvaluateOp, decision: Decision): Charge {
  const decidedAt = decision.decidedAt
  const chargedAt = decidedAt === undefined || decision.delayMs === undefined ? decidedAt : decidedAt + decision.delayMs
  return { backend: answeredElsewhere.get(decision) ?? backend, op, chargedAt }
}

/**
 * Gives charges back, one refund call per backend. Resolves whether every refund went through; a
 * refund that fails leaves its charge in place (the client is limited slightly early, never late).
 */
export async function refundCharges (charges: readonly Charge[]): Promise<boolean> {
  if (charges.length === 0) return true
  const byBackend = new Map<ThrottleBackend, EvaluateOp[]>()
  for (const charge of charges) {
    const op: EvaluateOp = charge.chargedAt === undefined ? charge.op : { ...charge.op, chargedAt: charge.chargedAt }
    const ops = byBackend.get(charge.backend)
    if (ops === undefined) byBackend.set(charge.backend, [op])
    else ops.push(op)
  }
  const results = await Promise.all([...byBackend].map(async ([backend, ops]) => {
    try {
      await backend.evaluate(ops, 'refund')
      return true
    } catch {
      return false
    }
  }))
  return results.every(Boolean)
}
