/**
 * Charges held while a request is in flight (strategies with `heldUntilResponse`, such as
 * Concurrency): the hook gives them back once the response ends, whichever way it ends. Node's
 * response emits 'close' when it was sent in full, when an error answer was sent, and when the
 * client went away first, so one listener covers every exit; it fires once.
 */
import type { Strategy } from '../../types/strategy.js'
import { refundCharges, type Charge } from './charges.js'
import type { LimitGroup, Outcome } from './limit-group.js'
import { slotsReleased } from './slot-wait.js'

/** The raw response, as far as the release needs it. A Node `ServerResponse` fits. */
export interface ClosingResponse {
  once(event: 'close', listener: () => void): unknown
}

/** Whether any limit of the group holds its charge until the response ends (read per request: strategies can change). */
export function holdsUntilResponse (group: LimitGroup): boolean {
  for (const limit of group.limits) if (limit.strategy.heldUntilResponse === true) return true
  return false
}

function isHeld (strategy: Strategy): boolean {
  return strategy.heldUntilResponse === true
}

/** The charges that are not held until the response ends (those a queued client's departure gives back itself). */
export function notHeld (charges: readonly Charge[]): Charge[] {
  return charges.filter((charge) => !isHeld(charge.op.strategy))
}

/**
 * Gives back the request's held charges when `response` closes; true when it will. Without a
 * response to watch (a hook called outside Fastify), the charges stay until their leases lapse.
 */
export function releaseOnClose (outcome: Outcome, response: ClosingResponse | undefined): boolean {
  if (response === undefined) return false
  let held: Charge[] | undefined
  for (const charge of outcome.charges) {
    if (!isHeld(charge.op.strategy)) continue
    held ??= []
    held.push(charge)
  }
  if (held === undefined) return false
  const charges = held
  response.once('close', () => {
    // A release that fails leaves the slots to their leases: the client waits a little, nothing leaks.
    // Either way, a request of this process waiting for one of these slots tries again.
    refundCharges(charges).catch(() => false).then(() => { slotsReleased(charges) }, () => {})
  })
  return true
}
