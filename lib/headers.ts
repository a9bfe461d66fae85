/**
 * Rate-limit response headers. A header style is chosen once per throttle at registration and
 * compiled into a writer; the request path only calls it. Values are always integers.
 */
import type { Decision } from '../types/decision.js'
import { invalidOption } from './errors.js'

/** The part of a reply the writers need. Fastify's reply fits. */
export interface HeaderTarget {
  header(name: string, value: string | number): unknown
}

/** Header styles. `false` sends none. */
export type HeadersOption = 'legacy' | false

/** Writes the headers of one decision. `windowMs` is the window of the rate in force. */
export type HeaderWriter = (reply: HeaderTarget, decision: Decision, windowMs: number) => void

/** Whole seconds, rounded up, never negative. */
export function toSeconds (ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000)
}

function writeLegacy (reply: HeaderTarget, decision: Decision): void {
  reply.header('x-ratelimit-limit', decision.limit)
  reply.header('x-ratelimit-remaining', decision.remaining)
  reply.header('x-ratelimit-reset', toSeconds(decision.resetMs))
  if (!decision.allowed && decision.retryAfterMs >= 0) reply.header('retry-after', toSeconds(decision.retryAfterMs))
}

function writeNothing (): void {}

/**
 * Compiles a header option into a writer. Throws `TRAFFIK_ERR_INVALID_OPTION` for unknown styles.
 * @param option the `headers` option (default `'legacy'`)
 */
export function compileHeaders (option: unknown = 'legacy'): HeaderWriter {
  if (option === 'legacy') return writeLegacy
  if (option === false) return writeNothing
  return invalidOption('headers', "'legacy' or false", option)
}
