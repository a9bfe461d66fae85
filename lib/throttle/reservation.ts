/**
 * Reservations: charge first, do the work, then keep the charge (`commit`) or give it back
 * (`refund`). A quota block therefore never runs its work and then fails with 429: it fails
 * before the work, or the work runs on capacity that was already taken. Across several limits
 * a reservation is all-or-nothing, like a route's limits. A refund gives back the charges the
 * reservation made, each on its backend and in its window: a window that has ended since gives
 * nothing back.
 */
import type { Decision } from '../../types/decision.js'
import { UNLIMITED_DECISION } from '../decision.js'
import { refundCharges, type Charge } from './charges.js'
import type { ThrottleRequest } from './contracts.js'
import { notifyOutcome } from './decision-events.js'
import type { GroupOutcome, LimitGroup, Outcome } from './limit-group.js'

export type ReservationState = 'reserved' | 'committed' | 'refunded' | 'rejected'

export interface Reservation {
  /** The most restrictive decision; run the work only when `decision.allowed`. */
  readonly decision: Decision
  /** Every applying limit's decision and throttle (as on `request.rateLimit`); undefined when none applied. */
  readonly outcome: GroupOutcome | undefined
  /** `'reserved'` until committed or refunded; `'rejected'` when nothing was charged. */
  readonly state: ReservationState
  /** Keeps the charge. Afterwards `refund()` does nothing. */
  commit(): void
  /**
   * Gives the charged capacity back through each strategy's `refund`, as far as the charge is
   * still in force. Resolves true when it did; false when there was nothing to give back
   * (rejected, committed, already refunded, no limit applied) or a backend failed (logged through
   * `request.log`; the charge then stays).
   */
  refund(): Promise<boolean>
}

class GroupReservation implements Reservation {
  readonly decision: Decision
  readonly outcome: GroupOutcome | undefined
  #state: ReservationState
  readonly #charges: readonly Charge[]
  readonly #request: ThrottleRequest

  constructor (outcome: Outcome | undefined, request: ThrottleRequest) {
    this.outcome = outcome
    this.decision = outcome?.decision ?? UNLIMITED_DECISION
    this.#charges = outcome?.charges ?? []
    this.#request = request
    this.#state = this.decision.allowed ? 'reserved' : 'rejected'
  }

  get state (): ReservationState {
    return this.#state
  }

  commit (): void {
    if (this.#state === 'reserved') this.#state = 'committed'
  }

  async refund (): Promise<boolean> {
    if (this.#state !== 'reserved') return false
    this.#state = 'refunded'
    if (this.#charges.length === 0) return false
    const ok = await refundCharges(this.#charges)
    if (!ok) this.#request.log?.warn({ keys: this.#charges.map((c) => c.op.key) }, 'fastify-traffik: a reservation refund failed; the charge stays')
    return ok
  }
}

/** Reserves on a group of limits (all-or-nothing). */
export async function reserveLimits (group: LimitGroup, request: ThrottleRequest, cost: number | undefined): Promise<Reservation> {
  const outcome = await group.decide(request, 'hit', cost)
  const observer = outcome?.limit.observer
  if (observer !== undefined) notifyOutcome(observer, request, outcome!)
  return new GroupReservation(outcome, request)
}
