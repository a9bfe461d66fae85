/**
 * `cachedRate`: a rate function for limits that live elsewhere (a plan in a database, a plans
 * service), read at most once per key and `ttlMs`, from a bounded cache, so no request waits for
 * a query once its key is known.
 */
import type { FastifyRequest } from 'fastify'
import { systemClock, type Clock } from '../clock.js'
import { invalidOption } from '../errors.js'
import { parseRate, type Rate, type RateInput } from '../rate.js'
import type { MaybePromise } from './option-types.js'

/** Options of `cachedRate`. */
export interface CachedRateOptions<Request = FastifyRequest> {
  /** What the rate depends on, per request: the cache key (an API key, a tenant or plan id). */
  key: (request: Request) => string
  /** Reads the rate of a key (a database query, a call to a plans service): any form `rate` takes. */
  load: (key: string) => MaybePromise<RateInput>
  /**
   * How long a loaded rate is used before it is read again, in ms. A rate past it is still
   * answered at once while one background load refreshes it.
   * @default 60000
   */
  ttlMs?: number
  /**
   * At most this many keys are held; the least recently used goes first.
   * @default 10000
   */
  maxKeys?: number
  /**
   * The rate of a key whose first load failed (held for at most a second, then loaded again).
   * Without it the load's error fails the request. A key loaded before keeps its last rate when
   * a reload fails.
   * @default undefined
   */
  fallback?: RateInput
  /**
   * Where time comes from (a `ManualClock` in tests).
   * @default the system clock
   */
  clock?: Clock
}

/** A rate function with its cache's controls. */
export interface CachedRate<Request = FastifyRequest> {
  (request: Request): Rate | Promise<Rate>
  /** Forgets a key (after its plan changed, say): its next request loads it again. */
  invalidate: (key: string) => void
  /** Forgets every key. */
  clear: () => void
  /** How many keys are held. */
  readonly size: number
}

interface Entry {
  rate: Rate
  /** When the rate is due to be read again (ms since the epoch). */
  staleAt: number
  reloading: boolean
}

/** A failed background reload is retried after at most this long, not on every request. */
const RETRY_MS = 1000

/**
 * Builds a rate function that reads each key's rate through `load` at most once per `ttlMs`,
 * holding at most `maxKeys` keys. A known key answers synchronously, so the limit decides without
 * waiting; concurrent first requests for a key share one load. See docs/rates.md.
 */
export function cachedRate<Request = FastifyRequest> (options: CachedRateOptions<Request>): CachedRate<Request> {
  if (options === null || typeof options !== 'object') invalidOption('cachedRate', 'an object { key, load, ttlMs?, maxKeys?, fallback? }', options)
  const { key, load, ttlMs = 60_000, maxKeys = 10_000, fallback, clock = systemClock } = options
  if (typeof key !== 'function') invalidOption('cachedRate.key', 'a function (request) => string', key)
  if (typeof load !== 'function') invalidOption('cachedRate.load', 'a function (key) => rate', load)
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) invalidOption('cachedRate.ttlMs', 'a positive integer (ms)', ttlMs)
  if (!Number.isSafeInteger(maxKeys) || maxKeys <= 0) invalidOption('cachedRate.maxKeys', 'a positive integer', maxKeys)
  if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') invalidOption('cachedRate.clock', 'a clock { now(): number }', clock)
  const fallbackRate = fallback === undefined ? undefined : parseRate(fallback, 'cachedRate.fallback')
  const entries = new Map<string, Entry>()
  const pending = new Map<string, Promise<Rate>>()

  const remember = (k: string, rate: Rate, forMs = ttlMs): Rate => {
    entries.delete(k)
    entries.set(k, { rate, staleAt: clock.now() + forMs, reloading: false })
    if (entries.size > maxKeys) entries.delete(entries.keys().next().value!)
    return rate
  }
  const read = async (k: string): Promise<Rate> => parseRate(await load(k), `rate loaded for ${JSON.stringify(k)}`)

  const rateOf = ((request: Request): Rate | Promise<Rate> => {
    const k = key(request)
    if (typeof k !== 'string') invalidOption('cachedRate.key', 'a function returning a string', k)
    const entry = entries.get(k)
    if (entry !== undefined) {
      // Most recently used goes last, so the first key is the one to evict.
      entries.delete(k)
      entries.set(k, entry)
      if (entry.staleAt <= clock.now() && !entry.reloading) {
        entry.reloading = true
        read(k).then((rate) => { if (entries.get(k) === entry) remember(k, rate) }, () => {
          entry.reloading = false
          entry.staleAt = clock.now() + Math.min(ttlMs, RETRY_MS)
        })
      }
      return entry.rate
    }
    let loading = pending.get(k)
    if (loading === undefined) {
      loading = read(k).then((rate) => remember(k, rate), (error: unknown) => {
        if (fallbackRate === undefined) throw error
        // Held briefly, so a failing source is asked again about once a second, not per request.
        return remember(k, fallbackRate, Math.min(ttlMs, RETRY_MS))
      }).finally(() => { pending.delete(k) })
      pending.set(k, loading)
    }
    return loading
  }) as CachedRate<Request>
  rateOf.invalidate = (k) => { entries.delete(k) }
  rateOf.clear = () => { entries.clear() }
  Object.defineProperty(rateOf, 'size', { get: () => entries.size })
  return rateOf
}
