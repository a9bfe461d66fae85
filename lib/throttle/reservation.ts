/**
 * Reservations: charge first, do the work, then keep the charge (`commit`) or give it back
 * (`refund`). A quota block therefore never runs its work and then fails with 429: it fails
 * before the work, or the work runs on capacity that was already taken. Across several throttles
 * a reservation is all-or-nothing, like a route's limits.
 */
import type { Decision } from '../../types/decision.js'
import { UNLIMITED_DECISION } from '../decision.js'
import { LimitGroup, refundCharged, type GroupOutcome, type PreparedLimitList } from './limit-group.js'
import { notify } from './decision-events.js'
import type { CostOptions, Throttle, ThrottleRequest } from './throttle.js'

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
   * Gives the charged capacity back through each strategy's `refund`. Resolves true when it did;
   * false when there was nothing to give back (rejected, committed, already refunded, no limit
   * applied) or a backend failed (logged through `request.log`; the charge then stays).
   */
  refund(): Promise<boolean>
}

class ChargedReservation implements Reservation {
  readonly decision: Decision
  readonly outcome: GroupOutcome | undefined
  #state: ReservationState
  readonly #charged: PreparedLimitList
  readonly #request: ThrottleRequest

  constructor (outcome: GroupOutcome | undefined, charged: PreparedLimitList, request: ThrottleRequest) {
    this.outcome = outcome
    this.decision = outcome?.decision ?? UNLIMITED_DECISION
    this.#charged = charged
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
    if (this.#charged.length === 0) return false
    const ok = await refundCharged(this.#request, this.#charged)
    if (!ok) this.#request.log?.warn({ uids: this.#charged.map((l) => l.throttle.uid) }, 'fastify-traffik: a reservation refund failed; the charge stays')
    return ok
  }
}

/** Reserves on a group of limits (all-or-nothing). */
export async function reserveLimits (group: LimitGroup, request: ThrottleRequest, cost: number | undefined): Promise<Reservation> {
  const { outcome, charged } = await group.decideCharged(request, 'hit', cost)
  if (outcome !== undefined && outcome.decision !== UNLIMITED_DECISION) {
    const observer = outcome.throttle.observer
    if (observer !== undefined) notify(observer, outcome.throttle.uid, outcome.key, outcome.decision, request)
  }
  return new ChargedReservation(outcome, charged, request)
}

/**
 * Reserves `cost` on every throttle at once: either all are charged, or none is (the rejection
 * reports the most restrictive limit). Refunding the reservation refunds every throttle.
 *
 * ```ts
 * const reservation = await reserveAll(request, [perMinute, perDay], { cost: 5 })
 * if (!reservation.decision.allowed) return reply.code(429).send()
 * try { await work(); reservation.commit() } catch (error) { await reservation.refund(); throw error }
 * ```
 */
export async function reserveAll (request: ThrottleRequest, throttles: readonly Throttle[], options: CostOptions = {}): Promise<Reservation> {
  return await reserveLimits(new LimitGroup(throttles), request, options.cost)
}
