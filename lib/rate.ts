/**
 * Rates: how many units of cost per window. Parsed once, at registration.
 */
import { InvalidRateError, describeValue } from './errors.js'

/** A parsed rate. `limit` units of cost per `windowMs` milliseconds. */
export interface Rate {
  /** Units of cost allowed per window; 0 blocks everything; `Infinity` never limits. */
  readonly limit: number
  /** Window length in whole milliseconds (>= 1). */
  readonly windowMs: number
  /** True when the rate never limits (`null`, `Infinity`, `'unlimited'`). */
  readonly unlimited: boolean
}

/** What users may write for a rate. */
export type RateInput = string | { limit: number, windowMs: number } | Rate | number | null

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000
}

// "<limit>/<count?><unit>", e.g. 100/min, 10/30s, 200/500ms, 5/ 2 hours
const RATE_PATTERN = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$/i

/** The longest window a rate may have: 1000 years, far below where millisecond arithmetic loses precision. */
export const MAX_WINDOW_MS = 1000 * 365 * 86_400_000

/** The rate that never limits. */
export const UNLIMITED: Rate = Object.freeze({ limit: Infinity, windowMs: 1000, unlimited: true })

const cache = new Map<string, Rate>()

/**
 * Parses a rate: `'100/min'`, `'5/s'`, `'10/30s'`, `'1000/hour'`, `'500/day'`, `'200/500ms'`,
 * `{ limit, windowMs }`, or `null` / `Infinity` / `'unlimited'` for no limit.
 * Throws `TRAFFIK_ERR_INVALID_RATE` naming the option and the value.
 *
 * @param input the rate to parse
 * @param option the option name reported in errors (default `'rate'`)
 */
export function parseRate (input: RateInput, option = 'rate'): Rate {
  if (input === null || input === Infinity) return UNLIMITED
  if (typeof input === 'string') return parseRateString(input, option)
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) return parseRateObject(input, option)
  throw new InvalidRateError(option, "expected a string like '100/min', { limit, windowMs }, or null", describeValue(input))
}

function parseRateString (input: string, option: string): Rate {
  const cached = cache.get(input)
  if (cached !== undefined) return cached
  if (input.trim().toLowerCase() === 'unlimited') return UNLIMITED
  const match = RATE_PATTERN.exec(input)
  if (match === null) {
    throw new InvalidRateError(option, "expected '<limit>/<window>' such as '100/min', '5/s', '10/30s' or '200/500ms'", describeValue(input))
  }
  const [, limitText, countText, unitText] = match as unknown as [string, string, string | undefined, string]
  const unitMs = UNIT_MS[unitText.toLowerCase()]
  if (unitMs === undefined) {
    throw new InvalidRateError(option, `unknown time unit '${unitText}' (use ms, s, min, hour, day or week)`, describeValue(input))
  }
  const count = countText === undefined ? 1 : Number(countText)
  const rate = makeRate(Number(limitText), count * unitMs, option, input)
  if (cache.size < 1000) cache.set(input, rate)
  return rate
}

function parseRateObject (input: object, option: string): Rate {
  const { limit, windowMs } = input as { limit?: unknown, windowMs?: unknown }
  if ('unlimited' in input && (input as Rate).unlimited === true) return UNLIMITED
  if (limit === Infinity || limit === null) return UNLIMITED
  if (typeof limit !== 'number' || typeof windowMs !== 'number') {
    throw new InvalidRateError(option, 'a rate object needs numeric limit and windowMs', describeValue(input))
  }
  return makeRate(limit, windowMs, option, input)
}

function makeRate (limit: number, windowMs: number, option: string, original: unknown): Rate {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new InvalidRateError(option, 'limit must be a non-negative integer', describeValue(original))
  }
  if (!Number.isFinite(windowMs) || windowMs < 1 || !Number.isInteger(windowMs)) {
    throw new InvalidRateError(option, 'the window must be a whole number of milliseconds, at least 1', describeValue(original))
  }
  if (windowMs > MAX_WINDOW_MS) {
    // Time arithmetic near 2^53 ms loses precision; no real quota needs more than a millennium.
    throw new InvalidRateError(option, `the window must be at most ${MAX_WINDOW_MS} ms (1000 years)`, describeValue(original))
  }
  return Object.freeze({ limit, windowMs, unlimited: false })
}

/** Renders a rate the way users write it, for logs and headers. */
export function formatRate (rate: Rate): string {
  if (rate.unlimited) return 'unlimited'
  const w = rate.windowMs
  for (const [unit, ms] of [['day', 86_400_000], ['hour', 3_600_000], ['min', 60_000], ['s', 1000]] as const) {
    if (w % ms === 0) return w === ms ? `${rate.limit}/${unit}` : `${rate.limit}/${w / ms}${unit}`
  }
  return `${rate.limit}/${w}ms`
}
