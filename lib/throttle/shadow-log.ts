/**
 * The log of a shadow throttle's "would have throttled" verdicts, kept quiet on purpose: the first
 * one is logged at once, then at most one line per interval with the count since the last line.
 * A shadow limit that is too tight would otherwise write one line per request, at the moment
 * traffic is highest.
 */
import { systemClock, type Clock } from '../clock.js'
import type { ThrottleRequest } from './contracts.js'

/** At most one log line per shadow throttle per minute (after the first). */
export const SHADOW_LOG_INTERVAL_MS = 60_000

export class ShadowLog {
  readonly #uid: string
  readonly #clock: Clock
  #lastAt = -Infinity
  #unlogged = 0

  constructor (uid: string, clock: Clock = systemClock) {
    this.#uid = uid
    this.#clock = clock
  }

  note (request: ThrottleRequest, key: string): void {
    this.#unlogged++
    const now = this.#clock.now()
    if (now - this.#lastAt < SHADOW_LOG_INTERVAL_MS) return
    const first = this.#lastAt === -Infinity
    const log = request.log
    if (log === undefined) return
    const info = log.info ?? log.warn
    info.call(log, { uid: this.#uid, key, wouldHaveThrottled: this.#unlogged, sinceMs: first ? 0 : now - this.#lastAt },
      first
        ? 'fastify-traffik: shadow throttle would have throttled a request (further ones are summed up once a minute)'
        : 'fastify-traffik: shadow throttle would have throttled requests since the last report')
    this.#lastAt = now
    this.#unlogged = 0
  }
}
