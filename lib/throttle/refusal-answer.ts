/**
 * A user's own answer to a refused request (`onThrottled`, `onDenied`). The status is already set;
 * the callback may send the reply itself or return a payload to send (sync or async). Returning
 * nothing (or the reply) leaves the refusal to Fastify's error handling; a throw or rejection goes
 * there instead of it.
 */
import { isPromiseLike } from './maybe-promise.js'

/** The reply fields an answer uses. A Fastify reply fits. */
export interface AnsweringReply {
  readonly sent: boolean
  send(payload?: unknown): unknown
}

/** Runs `callback`, then sends what it returned or passes `refusal()` (built only then) to `done`. */
export function answerRefusal (reply: AnsweringReply, callback: () => unknown, refusal: () => Error, done: (error?: Error) => void): void {
  let answer: unknown
  try {
    answer = callback()
  } catch (error) {
    done(error as Error)
    return
  }
  const settle = (value: unknown): void => {
    if (reply.sent) return
    if (value !== undefined && value !== reply) reply.send(value)
    else done(refusal())
  }
  if (isPromiseLike(answer)) Promise.resolve(answer).then(settle, done)
  else settle(answer)
}
