/**
 * `timeOfDay`: a rate function whose limit follows the hours of the day in a time zone (Traffik's
 * `TimeOfDay`): a base rate (or a rate function, such as a `tieredRate`) times the multiplier of
 * the first window that holds the local time, or the base as it is outside every window.
 * Everything is validated when the helper is built; the request path reads the local time
 * (`Intl`, cached per minute) and scales the limit.
 * Specification: docs/tiers-and-time-of-day.md.
 */
import type { FastifyRequest } from 'fastify'
import { systemClock, type Clock } from '../clock.js'
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { parseRate, type Rate, type RateInput } from '../rate.js'
import { localTime, zoneFormatter } from '../strategies/calendar-periods.js'
import { isPromiseLike } from './maybe-promise.js'
import type { RateFunction } from './tiered-rate.js'

/** Hours of the day with their multiplier. */
export interface TimeOfDayWindow {
  /** Local start time, `'HH:MM'` (inclusive). */
  from: string
  /** Local end time, `'HH:MM'` (exclusive); before `from`, the window runs past midnight; `'24:00'` is the end of the day. */
  to: string
  /** What the base limit is multiplied by in this window (rounded down to a whole limit); 0 blocks. */
  multiplier: number
  /**
   * ISO weekdays (1 = Monday … 7 = Sunday) the window applies on (the day it starts on, for a
   * window past midnight).
   * @default every day
   */
  days?: readonly number[]
}

export interface TimeOfDayOptions {
  /**
   * The IANA time zone the hours are read in.
   * @default 'UTC'
   */
  zone?: string
  /** The rate outside every window: a rate, or a rate function (e.g. a `tieredRate`). Required. */
  base: RateInput | RateFunction
  /** The windows; the first one that holds the local time applies. */
  windows: readonly TimeOfDayWindow[]
  /**
   * Where the time comes from.
   * @default the system clock
   */
  clock?: Clock
}

interface CompiledWindow { from: number, to: number, multiplier: number, days: ReadonlySet<number> | undefined }

const MINUTE = 60_000

/**
 * A rate function for hours of the day: `timeOfDay({ zone: 'Europe/Berlin', base: '1000/hour',
 * windows: [{ from: '09:00', to: '18:00', multiplier: 0.5 }] })`. Throws `TRAFFIK_ERR_INVALID_OPTION`
 * (or `TRAFFIK_ERR_INVALID_RATE` for the base) at once for bad options.
 */
export function timeOfDay (options: TimeOfDayOptions): RateFunction {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) invalidOption('timeOfDay options', 'an object { zone, base, windows }', options)
  rejectUnknownKeys('timeOfDay', options, ['zone', 'base', 'windows', 'clock'])
  const formatter = zoneFormatter(options.zone ?? 'UTC', 'timeOfDay.zone')
  const clock = options.clock ?? systemClock
  if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') invalidOption('timeOfDay.clock', 'an object with a now() method', clock)
  if (options.base === undefined) invalidOption('timeOfDay.base', 'a rate or a rate function', options.base)
  const base = typeof options.base === 'function' ? options.base : parseRate(options.base, 'timeOfDay.base')
  if (!Array.isArray(options.windows)) invalidOption('timeOfDay.windows', 'an array of { from, to, multiplier, days? }', options.windows)
  const windows = (options.windows as readonly TimeOfDayWindow[]).map((window, i) => compileWindow(window, `timeOfDay.windows[${i}]`))

  // The multiplier in force, worked out once per minute (windows are in whole minutes).
  let minuteStart = -Infinity
  let multiplier = 1
  const multiplierNow = (): number => {
    const now = clock.now()
    if (now < minuteStart || now >= minuteStart + MINUTE) {
      minuteStart = now - (((now % MINUTE) + MINUTE) % MINUTE)
      multiplier = multiplierAt(windows, formatter, now)
    }
    return multiplier
  }
  if (typeof base !== 'function') return () => scaled(base, multiplierNow())
  return (request: FastifyRequest) => {
    const rate = base(request)
    if (isPromiseLike<RateInput>(rate)) return Promise.resolve(rate).then((input) => scaled(parseRate(input, 'timeOfDay.base'), multiplierNow()))
    return scaled(parseRate(rate, 'timeOfDay.base'), multiplierNow())
  }
}

/** The rate with its limit times `multiplier`, rounded down; unlimited stays unlimited. */
function scaled (rate: Rate, multiplier: number): Rate {
  if (rate.unlimited || multiplier === 1) return rate
  // The epsilon keeps a product such as 100 × 0.29 (28.999999999999996 in binary) at 29.
  return { limit: Math.floor(rate.limit * multiplier + 1e-9), windowMs: rate.windowMs, unlimited: false }
}

function multiplierAt (windows: readonly CompiledWindow[], formatter: Intl.DateTimeFormat, now: number): number {
  const local = localTime(formatter, now)
  const minute = local.hour * 60 + local.minute
  const weekday = ((new Date(Date.UTC(local.year, local.month - 1, local.day)).getUTCDay() + 6) % 7) + 1
  const yesterday = weekday === 1 ? 7 : weekday - 1
  for (const w of windows) {
    if (w.from < w.to) {
      if (minute >= w.from && minute < w.to && (w.days === undefined || w.days.has(weekday))) return w.multiplier
    } else if (minute >= w.from) {
      if (w.days === undefined || w.days.has(weekday)) return w.multiplier
    } else if (minute < w.to) {
      // The part past midnight belongs to the day the window started on.
      if (w.days === undefined || w.days.has(yesterday)) return w.multiplier
    }
  }
  return 1
}

function compileWindow (window: TimeOfDayWindow, path: string): CompiledWindow {
  if (window === null || typeof window !== 'object' || Array.isArray(window)) invalidOption(path, 'an object { from, to, multiplier, days? }', window)
  rejectUnknownKeys('a timeOfDay window', window, ['from', 'to', 'multiplier', 'days'], path)
  const from = minuteOf(window.from, `${path}.from`, false)
  const to = minuteOf(window.to, `${path}.to`, true)
  if (from === to) invalidOption(`${path}.to`, 'a time other than `from` (a window of no length)', window.to)
  const { multiplier } = window
  if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier < 0) invalidOption(`${path}.multiplier`, 'a finite number >= 0', multiplier)
  let days: Set<number> | undefined
  if (window.days !== undefined) {
    if (!Array.isArray(window.days) || window.days.length === 0 || !window.days.every((d) => Number.isInteger(d) && d >= 1 && d <= 7)) {
      invalidOption(`${path}.days`, 'a non-empty array of ISO weekdays 1–7 (1 = Monday)', window.days)
    }
    days = new Set(window.days)
  }
  return { from, to, multiplier, days }
}

/** Minutes since midnight of `'HH:MM'`; `'24:00'` only where `endOfDay` allows it. */
function minuteOf (value: unknown, path: string, endOfDay: boolean): number {
  const match = typeof value === 'string' ? /^([01]\d|2[0-4]):([0-5]\d)$/.exec(value) : null
  const minutes = match === null ? NaN : Number(match[1]) * 60 + Number(match[2])
  if (!(minutes < 24 * 60 || (endOfDay && minutes === 24 * 60))) invalidOption(path, `a local time 'HH:MM' from 00:00 to ${endOfDay ? '24:00' : '23:59'}`, value)
  return minutes
}
