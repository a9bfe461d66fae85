/**
 * What header writers need, shared by every header style.
 */
import type { Decision } from '../../types/decision.js'
import { toSeconds } from '../decision.js'

/** The part of a reply the writers need. Fastify's reply fits. */
export interface HeaderTarget {
  header(name: string, value: string | number): unknown
}

/** Writes the headers of one decision. `windowMs` is the window of the rate in force. */
export type HeaderWriter = (reply: HeaderTarget, decision: Decision, windowMs: number) => void

/** `retry-after` in whole seconds, for rejections that waiting can cure. */
export function writeRetryAfter (reply: HeaderTarget, decision: Decision): void {
  if (!decision.allowed && decision.retryAfterMs >= 0) reply.header('retry-after', toSeconds(decision.retryAfterMs))
}
