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

/** What the events of one request are built from (a group's outcome). */
export interface ObservedOutcome {
  readonly decision: Decision
  readonly throttle: ThrottleView
  readonly key: string
  readonly shadowThrottled: ReadonlyArray<{ readonly throttle: ThrottleView, readonly key: string, readonly decision: Decision }>
}

/** The events of one request: its answer, then one `'shadow-throttled'` per shadow limit that would have rejected it. */
export function notifyOutcome (observer: DecisionObserver, request: ThrottleRequest, outcome: ObservedOutcome): void {
  if (outcome.decision !== UNLIMITED_DECISION) notify(observer, outcome.throttle.uid, outcome.key, outcome.decision, request)
  for (const verdict of outcome.shadowThrottled) {
    try {
      observer({ type: 'shadow-throttled', uid: verdict.throttle.uid, key: verdict.key, decision: verdict.decision, error: undefined, request: request as never })
    } catch (error) {
      request.log?.warn({ err: error }, 'fastify-traffik: onDecision threw')
    }
  }
}

/** The enforcer listener of an observer (undefined stays undefined: no cost on the request path). */
export function observerListener (observer: DecisionObserver | undefined): ((request: ThrottleRequest, outcome: ObservedOutcome) => void) | undefined {
  if (observer === undefined) return undefined
  return (request, outcome) => { notifyOutcome(observer, request, outcome) }
}
