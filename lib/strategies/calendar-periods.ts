/**
 * Calendar periods in an IANA time zone: where a day, week, month or year (or a billing cycle
 * anchored on a day) begins, as instants in ms since the epoch. Built on `Intl.DateTimeFormat`,
 * which carries the time-zone database of the running Node, so no date library is needed: the
 * only question asked of it is "which local date and time is this instant in the zone", and
 * everything else is civil-date arithmetic on `Date.UTC`.
 *
 * A period starts at local midnight of its first day (the first instant whose local date is that
 * day, so a midnight skipped by a daylight-saving change starts the day when the clock jumps, and
 * a midnight that happens twice starts it the first time).
 */
import { invalidOption } from '../errors.js'

/** The kinds of calendar period. */
export type CalendarPeriod = 'day' | 'week' | 'month' | 'year'

export const CALENDAR_PERIODS: readonly CalendarPeriod[] = ['day', 'week', 'month', 'year']

const DAY_MS = 86_400_000

/** A local date and time: year, month 1–12, day 1–31, hour, minute, second. */
export interface LocalTime {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/**
 * The formatter that reads local times in `zone`. Throws `TRAFFIK_ERR_INVALID_OPTION` naming
 * `option` when the zone is not one the running Node knows.
 */
export function zoneFormatter (zone: unknown, option = 'zone'): Intl.DateTimeFormat {
  if (typeof zone !== 'string' || zone.length === 0) invalidOption(option, "an IANA time zone such as 'Europe/Berlin' or 'UTC'", zone)
  let formatter = formatters.get(zone)
  if (formatter !== undefined) return formatter
  try {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric'
    })
  } catch {
    return invalidOption(option, "an IANA time zone such as 'Europe/Berlin' or 'UTC'", zone)
  }
  if (formatters.size < 1000) formatters.set(zone, formatter)
  return formatter
}

/** The local date and time of instant `at` (ms) as `formatter`'s zone shows it. */
export function localTime (formatter: Intl.DateTimeFormat, at: number): LocalTime {
  let year = 0
  let month = 0
  let day = 0
  let hour = 0
  let minute = 0
  let second = 0
  for (const part of formatter.formatToParts(at)) {
    switch (part.type) {
      case 'year': year = Number(part.value); break
      case 'month': month = Number(part.value); break
      case 'day': day = Number(part.value); break
      case 'hour': hour = Number(part.value) % 24; break
      case 'minute': minute = Number(part.value); break
      case 'second': second = Number(part.value); break
    }
  }
  return { year, month, day, hour, minute, second }
}

/** The local time `t` read as if it were UTC, in ms (the local wall clock as a number). */
function wallOf (t: LocalTime): number {
  return Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second)
}

/** The zone's offset from UTC at instant `at`, in ms (local wall clock minus UTC). */
function offsetAt (formatter: Intl.DateTimeFormat, at: number): number {
  const whole = at - (((at % 1000) + 1000) % 1000)
  return wallOf(localTime(formatter, whole)) - whole
}

/**
 * The first instant whose local date in the zone is the civil date `wall` (ms of its midnight
 * read as UTC). Offsets are taken a day before and a day after, so a change of offset near that
 * midnight is seen from both sides; of the candidate instants, the earliest whose local wall clock
 * is at or past that midnight is the start of the day.
 */
function startOfLocalDay (formatter: Intl.DateTimeFormat, wall: number): number {
  let best = Infinity
  for (const probe of [wall - DAY_MS, wall, wall + DAY_MS]) {
    const candidate = wall - offsetAt(formatter, probe)
    if (candidate < best && wallOf(localTime(formatter, candidate)) >= wall) best = candidate
  }
  return best
}

/** Days in month `month` (1–12) of `year`. */
function daysInMonth (year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

/** The civil date (as ms of its midnight read as UTC) `months` months after (year, month) on day `day`, clamped to the month's last day. */
function monthDay (year: number, month: number, months: number, day: number): number {
  const first = new Date(Date.UTC(year, month - 1 + months, 1))
  const y = first.getUTCFullYear()
  const m = first.getUTCMonth() + 1
  return Date.UTC(y, m - 1, Math.min(day, daysInMonth(y, m)))
}

/**
 * The normalised anchor of a cycle: for `'month'` the day of the month (1–31; a day past a
 * month's end means its last day), for `'week'` the ISO weekday it starts on (1 = Monday …
 * 7 = Sunday), for `'year'` month × 100 + day (101 = 1 January), for `'day'` always 0.
 */
export type AnchorCode = number

/** The anchor each period has when none is given: the 1st, Monday, 1 January, midnight. */
export function defaultAnchor (period: CalendarPeriod): AnchorCode {
  return period === 'month' ? 1 : period === 'week' ? 1 : period === 'year' ? 101 : 0
}

/**
 * Reads an anchor: a day of the month (an integer 1–31, for `'month'`), an ISO weekday (1–7, for
 * `'week'`), or a date (a `Date`, or a string `Date` parses, such as `'2026-01-17'`) whose local
 * day in the zone the cycle restarts on: its day of the month for `'month'`, its weekday for
 * `'week'`, its month and day for `'year'`. Throws `TRAFFIK_ERR_INVALID_OPTION` naming `option`.
 */
export function readAnchor (value: unknown, period: CalendarPeriod, formatter: Intl.DateTimeFormat, option = 'anchor'): AnchorCode {
  if (period === 'day') invalidOption(option, "nothing for a 'day' period (days start at local midnight)", value)
  if (typeof value === 'number') {
    const max = period === 'month' ? 31 : period === 'week' ? 7 : 0
    if (Number.isInteger(value) && value >= 1 && value <= max) return value
    return invalidOption(option, period === 'year' ? 'a date such as \'2026-03-01\' for a yearly cycle' : `an integer from 1 to ${max}, or a date`, value)
  }
  const local = localDateOf(value, formatter)
  if (local === undefined) return invalidOption(option, "a day number or a date such as '2026-01-17'", value)
  if (period === 'month') return local.day
  if (period === 'year') return local.month * 100 + local.day
  return isoWeekday(Date.UTC(local.year, local.month - 1, local.day))
}

/** The local date of an anchor: `'2026-01-17'` names that day as it is; a `Date` or another string is an instant, read in the zone. */
function localDateOf (value: unknown, formatter: Intl.DateTimeFormat): { year: number, month: number, day: number } | undefined {
  if (typeof value === 'string') {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value)
    if (match !== null) {
      const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])]
      if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined
      return { year, month, day }
    }
  }
  const at = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN
  return Number.isFinite(at) ? localTime(formatter, at) : undefined
}

/** ISO weekday (1 = Monday … 7 = Sunday) of a civil date given as ms of its midnight read as UTC. */
function isoWeekday (wall: number): number {
  const day = new Date(wall).getUTCDay()
  return day === 0 ? 7 : day
}

/**
 * Five period boundaries around `now`, ascending: `b0 < b1 < b2 < b3 < b4`, where `now` lies in
 * period `[b2, b3)` and its two neighbours on each side follow (so the step can choose by the
 * backend's own clock, and knows the period before the one it chooses).
 */
export function periodBounds (formatter: Intl.DateTimeFormat, period: CalendarPeriod, anchor: AnchorCode, now: number): number[] {
  const local = localTime(formatter, now)
  const today = Date.UTC(local.year, local.month - 1, local.day)
  const walls: number[] = []
  if (period === 'day' || period === 'week') {
    const step = period === 'day' ? 1 : 7
    const back = period === 'day' ? 0 : (isoWeekday(today) - anchor + 7) % 7
    for (let k = -2; k <= 2; k++) walls.push(today + (k * step - back) * DAY_MS)
  } else if (period === 'month') {
    // The cycle that holds today started this month, unless today is before this month's anchor day.
    const sinceThisMonth = today >= monthDay(local.year, local.month, 0, anchor) ? 0 : -1
    for (let k = -2; k <= 2; k++) walls.push(monthDay(local.year, local.month, sinceThisMonth + k, anchor))
  } else {
    const month = Math.floor(anchor / 100)
    const day = anchor % 100
    const sinceThisYear = today >= monthDay(local.year, month, 0, day) ? 0 : -1
    for (let k = -2; k <= 2; k++) walls.push(monthDay(local.year + sinceThisYear + k, month, 0, day))
  }
  return walls.map((wall) => startOfLocalDay(formatter, wall))
}
