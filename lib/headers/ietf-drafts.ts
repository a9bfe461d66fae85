/**
 * The IETF httpapi "RateLimit header fields for HTTP" drafts, by version:
 *
 * - draft-6: `RateLimit-Policy: 100;w=60` and three fields `RateLimit-Limit`, `RateLimit-Remaining`,
 *   `RateLimit-Reset` (seconds until the quota resets).
 * - draft-7: `RateLimit-Policy: 100;w=60` and one field `RateLimit: limit=100, remaining=99, reset=60`.
 * - draft-8: structured-field lists with a named policy: `RateLimit-Policy: "100/min";q=100;w=60`
 *   and `RateLimit: "100/min";r=99;t=60`, the policy name tying the two together.
 *
 * `w` is whole seconds, so a sub-second window is advertised as one second (a conservative
 * statement: the client is told it may send `q` per second, never more than it really may).
 * Values are integers; `retry-after` is added on rejections.
 */
import type { Decision } from '../../types/decision.js'
import { toSeconds } from '../decision.js'
import { writeRetryAfter, type HeaderTarget, type HeaderWriter } from './header-target.js'

/** Renders a window the way rates are written: `min`, `30s`, `500ms`, for draft-8 policy names. */
function windowName (windowMs: number): string {
  for (const [unit, ms] of [['day', 86_400_000], ['hour', 3_600_000], ['min', 60_000], ['s', 1000]] as const) {
    if (windowMs % ms === 0) return windowMs === ms ? unit : `${windowMs / ms}${unit}`
  }
  return `${windowMs}ms`
}

/**
 * Memoizes the policy text of the last (limit, window) pair: a static rate computes it once, and
 * a rate function recomputes it only when the rate it returns changes.
 */
function policyCache (render: (limit: number, windowMs: number) => string): (limit: number, windowMs: number) => string {
  let lastLimit = NaN
  let lastWindow = NaN
  let text = ''
  return (limit, windowMs) => {
    if (limit !== lastLimit || windowMs !== lastWindow) {
      text = render(limit, windowMs)
      lastLimit = limit
      lastWindow = windowMs
    }
    return text
  }
}

/** The draft-6/7 policy item: `<quota>;w=<seconds>`. */
function plainPolicy (limit: number, windowMs: number): string {
  return `${limit};w=${Math.max(1, toSeconds(windowMs))}`
}

/** The draft-8 policy name: an sf-string such as `"100/min"`. */
function policyName (limit: number, windowMs: number): string {
  return `"${limit}/${windowName(windowMs)}"`
}

export function draft6Writer (): HeaderWriter {
  const policy = policyCache(plainPolicy)
  return function writeDraft6 (reply: HeaderTarget, decision: Decision, windowMs: number): void {
    reply.header('ratelimit-policy', policy(decision.limit, windowMs))
    reply.header('ratelimit-limit', decision.limit)
    reply.header('ratelimit-remaining', decision.remaining)
    reply.header('ratelimit-reset', toSeconds(decision.resetMs))
    writeRetryAfter(reply, decision)
  }
}

export function draft7Writer (): HeaderWriter {
  const policy = policyCache(plainPolicy)
  return function writeDraft7 (reply: HeaderTarget, decision: Decision, windowMs: number): void {
    reply.header('ratelimit-policy', policy(decision.limit, windowMs))
    reply.header('ratelimit', `limit=${decision.limit}, remaining=${decision.remaining}, reset=${toSeconds(decision.resetMs)}`)
    writeRetryAfter(reply, decision)
  }
}

export function draft8Writer (): HeaderWriter {
  const name = policyCache(policyName)
  const policy = policyCache((limit, windowMs) => `${policyName(limit, windowMs)};q=${limit};w=${Math.max(1, toSeconds(windowMs))}`)
  return function writeDraft8 (reply: HeaderTarget, decision: Decision, windowMs: number): void {
    reply.header('ratelimit-policy', policy(decision.limit, windowMs))
    reply.header('ratelimit', `${name(decision.limit, windowMs)};r=${decision.remaining};t=${toSeconds(decision.resetMs)}`)
    writeRetryAfter(reply, decision)
  }
}
