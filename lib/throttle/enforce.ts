/**
 * The request hook: decides a request with a LimitGroup, writes headers, and either lets it through
 * or rejects it (the coded 429 error, or the throttle's `onThrottled`). Callback style, so an
 * in-memory decision completes without allocating a promise.
 */
import type { Decision } from '../../types/decision.js'
import { toSeconds, UNLIMITED_DECISION } from '../decision.js'
import { BannedError, RateLimitedError } from '../errors.js'
import type { HeaderTarget } from '../headers.js'
import { refundCharges } from './charges.js'
import type { ThrottleRequest } from './contracts.js'
import type { GroupOutcome, LimitGroup, Outcome } from './limit-group.js'
import { failRequest } from './lists.js'
import { isPromiseLike } from './maybe-promise.js'
import { answerRefusal } from './refusal-answer.js'
import { holdsUntilResponse, notHeld, releaseOnClose, type ClosingResponse } from './slot-release.js'

/** The reply fields the hook uses. A Fastify reply fits. */
export interface EnforceReply extends HeaderTarget {
  readonly sent: boolean
  /** The raw response: held charges (concurrency slots) are given back when it closes. */
  readonly raw?: ClosingResponse
  code(statusCode: number): unknown
  send(payload?: unknown): unknown
}

/** A request with the socket it came on, so a queued request can leave when its client goes away. */
export interface EnforceRequest extends ThrottleRequest {
  /** Set to the outcome of the request's limits (`request.rateLimit` in Fastify). */
  rateLimit?: GroupOutcome | null
  raw?: { socket?: { once(event: 'close', fn: () => void): unknown, off?(event: 'close', fn: () => void): unknown, destroyed?: boolean } | null }
}

export type HookDone = (error?: Error) => void

/** A Fastify-compatible `onRequest` / `preHandler` hook enforcing the group's limits. */
export type EnforceHook = (request: EnforceRequest, reply: EnforceReply, done: HookDone) => void

/** Called with every outcome before the reply is written (observability; `request.rateLimit`). */
export type OutcomeListener = (request: EnforceRequest, outcome: GroupOutcome) => void

/** Options of `createEnforcer`. */
export interface EnforcerOptions {
  /**
   * Store each outcome on `request.rateLimit` (the plugin declares that decorator; its hooks
   * turn this on).
   * @default false
   */
  exposeOutcome?: boolean
}

function storeOutcome (request: EnforceRequest, outcome: GroupOutcome): void {
  request.rateLimit = outcome
}

export function createEnforcer (group: LimitGroup, listener?: OutcomeListener, options: EnforcerOptions = {}): EnforceHook {
  // One listener chosen now, so the request path makes a single check whatever is enabled.
  const onOutcome = !options.exposeOutcome
    ? listener
    : listener === undefined
      ? storeOutcome
      : (request: EnforceRequest, outcome: GroupOutcome): void => {
          request.rateLimit = outcome
          listener(request, outcome)
        }
  return function enforceRateLimit (request, reply, done) {
    let outcome: Outcome | undefined | Promise<Outcome | undefined>
    try {
      outcome = group.decide(request)
    } catch (error) {
      failRequest(request, reply, error as Error, done)
      return
    }
    if (isPromiseLike<Outcome | undefined>(outcome)) {
      outcome.then((resolved) => { finish(request, reply, resolved, done, onOutcome, group) }, (error: Error) => { failRequest(request, reply, error, done) })
    } else {
      finish(request, reply, outcome, done, onOutcome, group)
    }
  }
}

function finish (request: EnforceRequest, reply: EnforceReply, outcome: Outcome | undefined, done: HookDone, onOutcome: OutcomeListener | undefined, group: LimitGroup): void {
  try {
    if (outcome === undefined) {
      done()
      return
    }
    if (onOutcome !== undefined) onOutcome(request, outcome)
    const decision = outcome.decision
    // A shadow answer writes headers only when its limit asks for them.
    if (decision !== UNLIMITED_DECISION && (!outcome.shadow || outcome.limit.shadowHeaders)) outcome.limit.writeHeaders(reply, decision, outcome.windowMs)
    if (decision.allowed) {
      // Slots and other in-flight charges go back when the response ends, however it ends.
      const releasing = holdsUntilResponse(group) && releaseOnClose(outcome, reply.raw)
      // Every limit must let the request go: it waits for the longest turn among them.
      if (outcome.delayMs > 0) waitForTurn(request, outcome, done, releasing)
      else done()
      return
    }
    reject(request, reply, outcome, done)
  } catch (error) {
    done(error as Error)
  }
}

function reject (request: EnforceRequest, reply: EnforceReply, outcome: Outcome, done: HookDone): void {
  const { decision, limit } = outcome
  if (decision.escalation?.banned === true && limit.ban !== undefined) {
    banned(request, reply, outcome, done)
    return
  }
  if (limit.onThrottled === undefined) {
    done(rateLimitedError(decision))
    return
  }
  reply.code(429)
  const onThrottled = limit.onThrottled
  answerRefusal(reply, () => onThrottled(request as never, reply as never, limit.throttledInfo(decision)), () => rateLimitedError(decision), done)
}

/**
 * A client under a ban: `onBanReach` on the offence that started it, then the ban's body with its
 * status, or the coded error carrying that status. `onThrottled` is for 429s and is not called.
 */
function banned (request: EnforceRequest, reply: EnforceReply, outcome: Outcome, done: HookDone): void {
  const { decision, limit } = outcome
  const ban = limit.ban!
  const info = limit.banInfo(decision)
  if (decision.escalation!.offence && ban.onBanReach !== undefined) ban.onBanReach(request as never, info)
  if (ban.body === undefined) {
    const error = new BannedError(toSeconds(decision.retryAfterMs)) as Error & { statusCode: number }
    error.statusCode = ban.statusCode
    done(error)
    return
  }
  reply.code(ban.statusCode)
  reply.send(typeof ban.body === 'function' ? (ban.body as (request: unknown, info: unknown) => unknown)(request, info) : ban.body)
}

/** The coded 429 error; Fastify's error handling renders `{ statusCode, code, error, message }`. */
export function rateLimitedError (decision: Decision): Error {
  if (decision.retryAfterMs < 0) return new RateLimitedError('and retrying cannot help: the request costs more than the limit allows')
  const seconds = toSeconds(decision.retryAfterMs)
  return new RateLimitedError(`retry in ${seconds} ${seconds === 1 ? 'second' : 'seconds'}`)
}

/**
 * Holds an admitted request until its turn (queueing strategies). If the client disconnects first,
 * every charge of the request is given back (its place in each queue, and the other limits
 * charged with it) and the request goes no further.
 */
function waitForTurn (request: EnforceRequest, outcome: Outcome, done: HookDone, releasing: boolean): void {
  const socket = request.raw?.socket
  const onClose = (): void => {
    clearTimeout(timer)
    // The client is gone; a failed refund only costs it capacity it no longer uses. Held charges
    // (slots) are already given back by the response's own close.
    refundCharges(releasing ? notHeld(outcome.charges) : outcome.charges).catch(() => {})
  }
  const timer = setTimeout(() => {
    socket?.off?.('close', onClose)
    done()
  }, outcome.delayMs)
  socket?.once('close', onClose)
}
