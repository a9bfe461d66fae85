/**
 * compat's `exponentialBackoff`, `continueExceeding` and `ban` against a reference model of
 * @fastify/rate-limit's Redis store: one counter per client that counts every request, expiring
 * one window after the first; a request over `max` moves the expiry to one window after it
 * (continueExceeding) or to timeWindow × 2^(count − max − 1) after it (exponentialBackoff); a
 * request is allowed while the count is at most `max`, banned (403) once it exceeds `max + ban`.
 *
 * The policy is the one compat gives the native throttle (escalationOf), wrapped around a window
 * that starts at the client's first request as the old store's did (compat's own windows are
 * aligned to the clock, a difference the migration guide lists). Random limits and timelines on an
 * injected clock; every request must agree on its status, remaining count and wait to the ms.
 * `ban` alone (without either) is left out: its ban lasts one window from the banning rejection,
 * a listed difference.
 */
import fc from 'fast-check'
import t from 'tap'
import type { Decision } from '../../types/decision.js'
import type { StepResult, Strategy, StrategyState } from '../../types/strategy.js'
import { escalationOf } from '../../lib/plugin/compat/compat-limit.js'
import { mergeParams } from '../../lib/plugin/compat/params.js'
import { Escalation } from '../../lib/strategies/escalation.js'

/** A fixed window from the client's first request: the old store's counter, rejections not counted. */
class FirstRequestWindow implements Strategy {
  readonly name = 'first-request-window'
  readonly lua = ''
  step (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number): StepResult {
    let [start, used] = state !== undefined && now < state[0]! + windowMs ? state : [now, 0]
    const resetMs = start! + windowMs - now
    const allowed = used! + cost <= limit
    if (allowed) used! += cost
    const decision: Decision = { allowed, limit, remaining: limit - used!, resetMs, retryAfterMs: allowed ? 0 : resetMs }
    return { state: [start!, used!], ttlMs: resetMs, decision }
  }

  encode (state: StrategyState): string { return state.join(',') }
  decode (raw: string): StrategyState { return raw.split(',').map(Number) }
}

interface Params { max: number, windowMs: number, ban: number, continueExceeding: boolean, exponentialBackoff: boolean }

/** @fastify/rate-limit's Redis store and its reading of `{ current, ttl }`. */
class OldRedisStore {
  current = 0
  expiresAt = 0
  constructor (readonly p: Params) {}
  request (now: number): { status: number, remaining: number, waitMs: number } {
    const { max, windowMs, ban, continueExceeding, exponentialBackoff } = this.p
    if (now >= this.expiresAt) this.current = 0
    this.current += 1
    const c = this.current
    if (c === 1 || (continueExceeding && c > max)) this.expiresAt = now + windowMs
    else if (exponentialBackoff && c > max) this.expiresAt = now + Math.min(windowMs * 2 ** (c - max - 1), Number.MAX_SAFE_INTEGER)
    const ttl = this.expiresAt - now
    if (c <= max) return { status: 200, remaining: max - c, waitMs: 0 }
    return { status: ban !== -1 && c - max > ban ? 403 : 429, remaining: 0, waitMs: ttl }
  }
}

const paramsArbitrary: fc.Arbitrary<Params> = fc.record({
  max: fc.integer({ min: 1, max: 3 }),
  windowMs: fc.integer({ min: 1, max: 2000 }),
  ban: fc.integer({ min: -1, max: 3 }),
  continueExceeding: fc.boolean(),
  exponentialBackoff: fc.boolean()
}).filter((p) => p.continueExceeding || p.exponentialBackoff)

const gapsArbitrary = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 5000 })), { minLength: 1, maxLength: 40 })

t.test('compat\'s escalation decides every request as @fastify/rate-limit\'s Redis store did', async (t) => {
  let requests = 0
  fc.assert(fc.property(paramsArbitrary, gapsArbitrary, fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }), (p, gaps, start) => {
    const params = mergeParams({ max: p.max, timeWindow: p.windowMs, ban: p.ban, continueExceeding: p.continueExceeding, exponentialBackoff: p.exponentialBackoff }, 'options')
    const { escalation } = escalationOf(params, 'model')
    const strategy = new Escalation(new FirstRequestWindow(), escalation!)
    const old = new OldRedisStore(p)
    let raw: string | undefined
    let expires = Infinity
    let now = start
    for (const [i, gap] of gaps.entries()) {
      now += gap
      if (raw !== undefined && now >= expires) raw = undefined
      const result = strategy.step(raw === undefined ? undefined : strategy.decode(raw), now, p.max, p.windowMs, 1)
      const d = result.decision
      if (d.allowed || result.keep === true) {
        raw = result.state === null ? undefined : strategy.encode(result.state)
        expires = now + result.ttlMs
      }
      const actual = { status: d.allowed ? 200 : d.escalation?.banned === true ? 403 : 429, remaining: d.allowed ? d.remaining : 0, waitMs: d.allowed ? 0 : d.retryAfterMs }
      const expected = old.request(now)
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        throw new Error(`request ${i}: compat ${JSON.stringify(actual)}, old store ${JSON.stringify(expected)} (${JSON.stringify(p)}, gaps ${JSON.stringify(gaps)})`)
      }
      requests++
    }
  }), { numRuns: Number(process.env.STRATEGY_PARITY_RUNS ?? 300) * 3 })
  t.pass(`${requests} requests decided as the old store decided them`)
})
