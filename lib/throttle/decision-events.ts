/**
 * Decision events for observers (the plugin's `onDecision`): built only when an observer is
 * attached, and an observer that throws never breaks a request.
 */
import type { Decision } from '../../types/decision.js'
import { UNLIMITED_DECISION } from '../decision.js'
import type { ThrottleRequest, ThrottleView } from './contracts.js'
import type { DecisionEvent } from './option-types.js'

/** Receives decision events (see the plugin's `onDecision`). */
export type DecisionObserver = (event: DecisionEvent) => void

/** Calls an observer; a throwing observer never breaks a request. */
export function notify (observer: DecisionObserver, uid: string, key: string, decision: Decision, request: ThrottleRequest): void {
  try {
    observer({ type: decision.allowed ? 'allowed' : 'throttled', uid, key, decision, error: undefined, request: request as never })
  } catch (error) {
    request.log?.warn({ err: error }, 'fastify-traffik: onDecision threw')
  }
}

export function notifyError (observer: DecisionObserver, uid: string, key: string, error: Error, request: ThrottleRequest): void {
  try {
    observer({ type: 'error', uid, key, decision: undefined, error, request: request as never })
  } catch (thrown) {
    request.log?.warn({ err: thrown }, 'fastify-traffik: onDecision threw')
  }
}

/** The enforcer listener of an observer (undefined stays undefined: no cost on the request path). */
export function observerListener (observer: DecisionObserver | undefined): ((request: ThrottleRequest, outcome: { decision: Decision, throttle: ThrottleView, key: string }) => void) | undefined {
  if (observer === undefined) return undefined
  return (request, outcome) => {
    if (outcome.decision !== UNLIMITED_DECISION) notify(observer, outcome.throttle.uid, outcome.key, outcome.decision, request)
  }
}
