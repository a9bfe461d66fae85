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
import { isHead, joinQueue, keysWithWaiters, leaveQueue, type SlotWaiter } from './slot-wait.js'

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
    decideAndFinish(request, reply, done, onOutcome, group, false)
  }
}

/**
 * Answers a decided request. `waited` is true for a request that already waited for a slot: it is
 * let through or refused now, never queued again.
 */
function finish (request: EnforceRequest, reply: EnforceReply, outcome: Outcome | undefined, done: HookDone, onOutcome: OutcomeListener | undefined, group: LimitGroup, waited: boolean): void {
  try {
    if (outcome === undefined) {
      done()
      return
    }
    if (!waited && holdsUntilResponse(group)) {
      const queued = queuedSlot(outcome)
      if (queued !== undefined) {
        // Requests of this process already wait for these slots: this one goes behind them.
        const { key, waitMs } = queued
        refundCharges(outcome.charges).catch(() => false).then(() => {
          waitForSlot(request, reply, outcome, key, waitMs, done, onOutcome, group)
        }, () => {})
        return
      }
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
    const waitMs = waited ? 0 : slotWaitOf(outcome)
    if (waitMs > 0) {
      waitForSlot(request, reply, outcome, outcome.key, waitMs, done, onOutcome, group)
      return
    }
    reject(request, reply, outcome, done)
  } catch (error) {
    done(error as Error)
  }
}

/**
 * Decides the request and answers it; `waited`: it already waited for a concurrency slot, so a
 * refusal is final instead of queueing it again.
 */
function decideAndFinish (request: EnforceRequest, reply: EnforceReply, done: HookDone, onOutcome: OutcomeListener | undefined, group: LimitGroup, waited: boolean): void {
  let outcome: Outcome | undefined | Promise<Outcome | undefined>
  try {
    outcome = group.decide(request)
  } catch (error) {
    failRequest(request, reply, error as Error, done)
    return
  }
  if (isPromiseLike<Outcome | undefined>(outcome)) {
    outcome.then((resolved) => { finish(request, reply, resolved, done, onOutcome, group, waited) }, (error: Error) => { failRequest(request, reply, error, done) })
  } else {
    finish(request, reply, outcome, done, onOutcome, group, waited)
  }
}

/** How long a refused request may wait for a slot: its refusing limit's `maxWaitMs` (0 when it cannot help). */
function slotWaitOf (outcome: Outcome): number {
  const strategy = outcome.limit.strategy
  if (outcome.shadow || outcome.decision.allowed || outcome.decision.retryAfterMs < 0 || strategy.heldUntilResponse !== true) return 0
  return strategy.maxWaitMs ?? 0
}

/** For an admitted request: the slot key others of this process wait for, with that limit's bound. */
function queuedSlot (outcome: Outcome): { key: string, waitMs: number } | undefined {
  if (!outcome.decision.allowed) return undefined
  const charges = outcome.charges
  const key = keysWithWaiters(charges)
  if (key === undefined) return undefined
  const waitMs = charges.find((charge) => charge.op.key === key)?.op.strategy.maxWaitMs ?? 0
  return waitMs > 0 ? { key, waitMs } : undefined
}

const FIRST_POLL_MS = 10
const LONGEST_POLL_MS = 200

/**
 * Queues a request refused for want of a slot (see slot-wait.ts): at the head of its key's queue
 * it is decided again when a slot of this process is given back and at each poll; behind the head
 * it waits its turn. It ends admitted (or refused by another limit) as any request is, refused
 * with its last decision once `waitMs` has passed, or silently when its client goes away.
 */
function waitForSlot (request: EnforceRequest, reply: EnforceReply, refused: Outcome, key: string, waitMs: number, done: HookDone, onOutcome: OutcomeListener | undefined, group: LimitGroup): void {
  const deadline = performance.now() + waitMs
  const socket = request.raw?.socket
  let last = refused
  let settled = false
  let deciding = false
  let pollMs = FIRST_POLL_MS
  let timer: ReturnType<typeof setTimeout> | undefined
  const waiter: SlotWaiter = {
    wake () {
      if (settled || deciding) return
      clearTimeout(timer)
      attempt()
    }
  }
  const leave = (): void => {
    settled = true
    clearTimeout(timer)
    socket?.off?.('close', onClose)
    leaveQueue(key, waiter)
  }
  // The client is gone: the request leaves the queue and goes no further.
  const onClose = (): void => { if (!settled) leave() }
  const answer = (outcome: Outcome | undefined): void => {
    leave()
    finish(request, reply, outcome, done, onOutcome, group, true)
  }
  const schedule = (): void => {
    const left = deadline - performance.now()
    if (left <= 0) {
      if (!last.decision.allowed) {
        answer(last)
        return
      }
      // Admitted, then queued behind earlier waiters, and its bound passed: one last decision, whatever it says.
      leave()
      decideAndFinish(request, reply, done, onOutcome, group, true)
      return
    }
    if (!isHead(key, waiter)) {
      timer = setTimeout(schedule, left)
      return
    }
    timer = setTimeout(attempt, Math.min(pollMs, left))
    pollMs = Math.min(pollMs * 2, LONGEST_POLL_MS)
  }
  const decided = (outcome: Outcome | undefined): void => {
    deciding = false
    if (settled) {
      // The client left while this decision was made: what it took goes back.
      if (outcome !== undefined) refundCharges(outcome.charges).catch(() => {})
      return
    }
    if (outcome === undefined || outcome.decision.allowed || slotWaitOf(outcome) === 0) {
      answer(outcome)
      return
    }
    last = outcome
    schedule()
  }
  const attempt = (): void => {
    if (settled) return
    if (!isHead(key, waiter)) {
      schedule()
      return
    }
    deciding = true
    try {
      const outcome = group.decide(request)
      if (isPromiseLike<Outcome | undefined>(outcome)) {
        outcome.then(decided, (error: Error) => {
          deciding = false
          if (settled) return
          leave()
          failRequest(request, reply, error, done)
        })
      } else {
        decided(outcome)
      }
    } catch (error) {
      deciding = false
      leave()
      failRequest(request, reply, error as Error, done)
    }
  }
  if (socket?.destroyed === true) {
    reject(request, reply, refused, done)
    return
  }
  socket?.once('close', onClose)
  joinQueue(key, waiter)
  schedule()
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
