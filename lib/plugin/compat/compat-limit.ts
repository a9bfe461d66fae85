/**
 * One compat limit: a native Throttle (FixedWindow, the compat backend) that decides and keeps
 * the counters, and the `@fastify/rate-limit` behaviour around it: keys, allow lists, `max` and
 * `timeWindow` per request, its headers, callbacks and rejection.
 */
import { format as formatDuration } from '@lukeed/ms'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ThrottleBackend } from '../../backends/throttle-backend.js'
import type { Decision } from '../../../types/decision.js'
import { UNLIMITED_DECISION } from '../../decision.js'
import { BackendError, UnsupportedError } from '../../errors.js'
import type { RateInput } from '../../rate.js'
import { EXEMPTED } from '../../throttle/identifier.js'
import type { EscalationOptions } from '../../throttle/option-types.js'
import { createThrottle, type Throttle } from '../../throttle/throttle.js'
import { countWithStore } from './callback-store.js'
import type { RateLimitStore } from './options.js'
import { isKeyList, type LimitParams } from './params.js'

/** What the hook worked out for a request before the throttle decides it. */
interface Pending { key: string, max: number, windowMs: number, rate: RateInput }

export class CompatLimit {
  /** The native throttle behind this limit: `hit`, `check`, `stat`, `reset`, `updateRate`... (none when a callback store counts). */
  readonly throttle: Throttle | undefined
  readonly params: LimitParams
  readonly #pending = new WeakMap<object, Pending>()
  readonly #ran: symbol
  readonly #store: RateLimitStore | undefined

  /**
   * @param ran the flag of the registration: each registration limits a request once
   * @param store the user's callback store for this limit: it is the limiter, no native throttle is made
   */
  constructor (uid: string, params: LimitParams, backend: ThrottleBackend, ran: symbol, store?: RateLimitStore) {
    this.params = params
    this.#ran = ran
    this.#store = store
    if (store !== undefined) return
    const pending = this.#pending
    this.throttle = createThrottle({
      uid,
      backend,
      headers: false,
      // The hook works the key and the rate out first; a direct call (throttle.check(request),
      // throttle.hit(request)) has them worked out here, the allow list exempting as in the hook.
      identifier: async (request) => {
        const known = pending.get(request) ?? await this.#resolve(request as FastifyRequest)
        return known === undefined ? EXEMPTED : known.key
      },
      rate: (request) => pending.get(request)!.rate,
      onError: params.skipOnError ? 'allow' : 'raise',
      ...escalationOf(params, uid)
    })
  }

  /** Key, `max` and window of a request, kept for the throttle's identifier and rate; undefined when the allow list exempts it. */
  async #resolve (request: FastifyRequest): Promise<Pending | undefined> {
    const p = this.params
    const client = String(await p.keyGenerator(request))
    // The old plugin appended the route's groupId to the key every callback and store receives.
    const key = p.groupId === undefined ? client : client + p.groupId
    if (p.allowList !== undefined && (await p.allowList(request, key) || (key !== client && isKeyList(p.allowList) && await p.allowList(request, client)))) return undefined
    const max = typeof p.max === 'function' ? Math.trunc(await p.max(request, key)) : p.max
    const windowMs = typeof p.timeWindow === 'function' ? Math.trunc(await p.timeWindow(request, key)) : p.timeWindow
    const known = { key, max, windowMs, rate: { limit: max, windowMs } }
    this.#pending.set(request, known)
    return known
  }

  /**
   * The decision of a callback store, read as the old plugin reads `{ current, ttl }`: allowed
   * while `current <= max`; `ban` compares the rejections the store counted.
   */
  async #count (key: string, max: number, windowMs: number): Promise<Decision> {
    let counted
    try {
      counted = await countWithStore(this.#store!, key, windowMs, max)
    } catch (error) {
      if (this.params.skipOnError) return UNLIMITED_DECISION
      throw error
    }
    const { current, ttl } = counted
    const decision: Decision = { allowed: current <= max, limit: max, remaining: Math.max(0, max - current), resetMs: ttl, retryAfterMs: ttl }
    const ban = this.params.ban
    if (!decision.allowed && ban !== -1 && current - max > ban) {
      decision.escalation = { offences: current - max, offence: current - max === ban + 1, banned: true }
    }
    return decision
  }

  /** The hook, for any of the four hooks the old plugin allows. */
  readonly hook = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const flags = request as unknown as Record<symbol, boolean>
    if (flags[this.#ran] === true) return
    flags[this.#ran] = true
    const p = this.params
    const known = await this.#resolve(request)
    if (known === undefined) return
    const { key, max } = known
    let decision: Decision
    try {
      decision = this.#store === undefined ? await this.throttle!.hit(request) : await this.#count(key, max, known.windowMs)
    } catch (error) {
      // The old plugin fails the request with the store's own error (500).
      throw error instanceof BackendError && (error as Error).cause instanceof Error ? (error as Error).cause : error
    }
    const labels = p.labels
    if (decision === UNLIMITED_DECISION) {
      // The backend failed and skipOnError let the request through, as the old plugin reports it.
      setHeaders(reply, p.onAllowed, labels, max, max, 0)
      return
    }
    const resetSeconds = Math.ceil(decision.resetMs / 1000)
    if (decision.allowed) {
      setHeaders(reply, p.onAllowed, labels, max, decision.remaining, resetSeconds)
      p.onExceeding?.(request, key)
      return
    }
    p.onExceeded?.(request, key)
    const waitSeconds = decision.retryAfterMs < 0 ? resetSeconds : Math.ceil(decision.retryAfterMs / 1000)
    setHeaders(reply, p.onRejected, labels, max, 0, resetSeconds, waitSeconds)
    const banned = decision.escalation?.banned === true
    // Once per ban: on the rejection that reaches it, not on each 403 while it lasts (when every
    // rejection is an offence, that is the one bringing the count to ban + 1).
    if (banned && decision.escalation!.offence && (!everyRejectionOffends(p) || decision.escalation!.offences === p.ban + 1)) p.onBanReach?.(request, key)
    throw p.errorResponseBuilder(request, {
      statusCode: banned ? 403 : 429,
      ban: banned,
      max,
      ttl: decision.resetMs,
      after: formatDuration(waitSeconds * 1000, true)
    })
  }
}

/**
 * The longest block exponentialBackoff grows to (about 142,000 years): the old plugin stopped at
 * the largest safe integer; this keeps the block's end, now + block, a safe integer too.
 */
const LONGEST_BLOCK_MS = 2 ** 52

/**
 * Whether every rejection of the limit counts as an offence, as the old plugin's counter counts
 * every request: with `exponentialBackoff`, or `continueExceeding` with `ban`.
 */
function everyRejectionOffends (p: LimitParams): boolean {
  return p.exponentialBackoff || (p.continueExceeding && p.ban !== -1)
}

/**
 * `ban`, `continueExceeding` and `exponentialBackoff` as a native escalation policy on the limit
 * (the store behaviour of the old plugin's Redis store; docs/escalation.md):
 * - `exponentialBackoff`: the n-th rejection in a row blocks for timeWindow × 2^(n−1) from it,
 *   every request during the block is a rejection (an offence), and the count ends with the block;
 * - `continueExceeding` (it wins over exponentialBackoff, as before): each rejection blocks for
 *   one window from it;
 * - `ban`: the rejection after `ban` others is a 403, and so is every one after it, for as long
 *   as the block it earns. Without continueExceeding or exponentialBackoff every rejection is an
 *   offence anyway (no block is in force between them), banning for one window.
 */
export function escalationOf (p: LimitParams, uid: string): { escalation?: EscalationOptions } {
  if (p.store !== undefined || (p.ban === -1 && !p.continueExceeding && !p.exponentialBackoff)) return {}
  if (p.ban === -1 && p.continueExceeding) return { escalation: { continueExceeding: true } }
  if (typeof p.timeWindow !== 'number') {
    const option = p.ban === -1 ? 'exponentialBackoff' : 'ban'
    throw new UnsupportedError(`fastify-traffik/compat: the limit '${uid}' has '${option}' with a 'timeWindow' function; give it a fixed timeWindow, or use the native escalation option (see the migration guide)`)
  }
  const ban = p.ban === -1 ? {} : { ban: { after: p.ban + 1 } }
  if (p.continueExceeding) return { escalation: { continueExceeding: true, offendWhileBlocked: true, periodMs: 'block', ...ban } }
  if (p.exponentialBackoff) {
    return { escalation: { blocks: { initialMs: p.timeWindow, factor: 2, maxMs: LONGEST_BLOCK_MS }, offendWhileBlocked: true, periodMs: 'block', ...ban } }
  }
  return {
    escalation: {
      periodMs: p.timeWindow,
      ban: { after: p.ban + 1, durationMs: p.timeWindow }
    }
  }
}

function setHeaders (reply: FastifyReply, names: readonly string[], labels: LimitParams['labels'], limit: number, remaining: number, reset: number, retryAfter?: number): void {
  for (const name of names) {
    if (name === labels.limit) reply.header(name, limit)
    else if (name === labels.remaining) reply.header(name, remaining)
    else if (name === labels.reset) reply.header(name, reset)
    else if (retryAfter !== undefined) reply.header(name, retryAfter)
  }
}
