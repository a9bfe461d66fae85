/**
 * CalendarQuota's pure step: period bounds in time zones (month ends, daylight-saving changes in
 * Europe/Berlin and America/New_York, a billing day of 31 in a 30-day month, a midnight skipped by
 * a DST change), rollover, refunds, option validation, and a property test against a reference
 * model that finds periods its own way (local dates from Intl, boundaries by bisection), with the
 * host's bounds computed off the step's clock by up to an hour either way and states dropped when
 * their TTL passes.
 */
import fc from 'fast-check'
import t from 'tap'
import { CalendarQuota, type CalendarQuotaOptions } from '../../lib/index.js'
import type { Decision } from '../../types/decision.js'
import type { StrategyState } from '../../types/strategy.js'

const NUM_RUNS = Number(process.env.STRATEGY_NUM_RUNS ?? 500)
const HOUR = 3_600_000
const DAY = 24 * HOUR

const at = (iso: string): number => Date.parse(iso)
const iso = (ms: number): string => new Date(ms).toISOString()

/** Drives the strategy like a backend in 'hit' mode: stores the state only when allowed. */
class Driver {
  state: StrategyState | undefined
  constructor (readonly quota: CalendarQuota, readonly limit: number) {}
  hit (now: number, cost = 1): Decision {
    const result = this.quota.step(this.state, now, this.limit, 1000, cost, this.quota.periods.bounds(now))
    if (result.decision.allowed) this.state = result.state ?? undefined
    return result.decision
  }
}

t.test('period bounds: month ends, DST changes, billing day 31, skipped midnights, leap years', async (t) => {
  const table: Array<[string, CalendarQuotaOptions, string, string, string]> = [
    // label, options, an instant, expected period start, expected period end
    ['UTC month, last instant of January', { period: 'month' }, '2026-01-31T23:59:59.999Z', '2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
    ['UTC month, first instant of February', { period: 'month' }, '2026-02-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
    ['Berlin month: 1 February begins at 23:00 UTC', { period: 'month', zone: 'Europe/Berlin' }, '2026-01-31T23:30:00.000Z', '2026-01-31T23:00:00.000Z', '2026-02-28T23:00:00.000Z'],
    ['Berlin month across the spring change (March is 1 h short)', { period: 'month', zone: 'Europe/Berlin' }, '2026-03-15T12:00:00.000Z', '2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z'],
    ['Berlin day of the spring change: 23 hours', { period: 'day', zone: 'Europe/Berlin' }, '2026-03-29T10:00:00.000Z', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'],
    ['Berlin day of the autumn change: 25 hours', { period: 'day', zone: 'Europe/Berlin' }, '2026-10-25T12:00:00.000Z', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z'],
    ['New York day of the spring change: 23 hours', { period: 'day', zone: 'America/New_York' }, '2026-03-08T12:00:00.000Z', '2026-03-08T05:00:00.000Z', '2026-03-09T04:00:00.000Z'],
    ['New York day of the autumn change: 25 hours', { period: 'day', zone: 'America/New_York' }, '2026-11-01T12:00:00.000Z', '2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z'],
    ['New York week holding the autumn change (Monday start)', { period: 'week', zone: 'America/New_York' }, '2026-11-01T12:00:00.000Z', '2026-10-26T04:00:00.000Z', '2026-11-02T05:00:00.000Z'],
    ['billing day 31 in April (30 days): the cycle starts on the 30th', { period: 'month', anchor: 31 }, '2026-04-30T08:00:00.000Z', '2026-04-30T00:00:00.000Z', '2026-05-31T00:00:00.000Z'],
    ['billing day 31, on 29 April: the March cycle runs to 30 April', { period: 'month', anchor: 31 }, '2026-04-29T08:00:00.000Z', '2026-03-31T00:00:00.000Z', '2026-04-30T00:00:00.000Z'],
    ['billing day 31 in February: the 28th', { period: 'month', anchor: 31 }, '2026-03-01T08:00:00.000Z', '2026-02-28T00:00:00.000Z', '2026-03-31T00:00:00.000Z'],
    ['billing day 17 in Berlin', { period: 'month', zone: 'Europe/Berlin', anchor: 17 }, '2026-12-04T10:00:00.000Z', '2026-11-16T23:00:00.000Z', '2026-12-16T23:00:00.000Z'],
    ['billing date 2025-01-31 as a date', { period: 'month', anchor: '2025-01-31' }, '2026-06-15T00:00:00.000Z', '2026-05-31T00:00:00.000Z', '2026-06-30T00:00:00.000Z'],
    ['Santiago: midnight skipped, the day starts at 01:00', { period: 'day', zone: 'America/Santiago' }, '2026-09-06T12:00:00.000Z', '2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z'],
    ['yearly from 29 February: 28 February in common years', { period: 'year', zone: 'America/New_York', anchor: '2024-02-29' }, '2026-03-01T10:00:00.000Z', '2026-02-28T05:00:00.000Z', '2027-02-28T05:00:00.000Z'],
    ['calendar year in Tokyo', { period: 'year', zone: 'Asia/Tokyo' }, '2026-12-31T16:00:00.000Z', '2026-12-31T15:00:00.000Z', '2027-12-31T15:00:00.000Z'],
    ['week starting Sunday', { period: 'week', anchor: 7 }, '2026-12-05T10:00:00.000Z', '2026-11-29T00:00:00.000Z', '2026-12-06T00:00:00.000Z']
  ]
  for (const [label, options, instant, start, end] of table) {
    const bounds = new CalendarQuota(options).periods.bounds(at(instant))
    t.same([iso(bounds[2]!), iso(bounds[3]!)], [start, end], label)
    t.ok(bounds.every((b, i) => i === 0 || b > bounds[i - 1]!), `${label}: five ascending bounds`)
  }
})

t.test('a quota crossing a month end in Berlin: exhausted on 31 January, fresh at local midnight, retry-after the real period end', async (t) => {
  const driver = new Driver(new CalendarQuota({ period: 'month', zone: 'Europe/Berlin' }), 3)
  const late = at('2026-01-31T22:00:00.000Z') // 23:00 in Berlin
  for (let i = 0; i < 3; i++) t.equal(driver.hit(late).allowed, true)
  const refused = driver.hit(late + 1)
  t.equal(refused.allowed, false)
  t.equal(refused.retryAfterMs, HOUR - 1, 'retry when February begins in Berlin, one hour later')
  t.equal(refused.resetMs, HOUR - 1)
  t.equal(driver.hit(at('2026-01-31T22:59:59.999Z')).allowed, false, 'one ms before Berlin midnight: still January')
  const february = driver.hit(at('2026-01-31T23:00:00.000Z'))
  t.equal(february.allowed, true, 'at Berlin midnight (23:00 UTC) the counter starts afresh')
  t.equal(february.remaining, 2)
  t.equal(february.resetMs, at('2026-02-28T23:00:00.000Z') - at('2026-01-31T23:00:00.000Z'), 'reset: the end of February in Berlin')
})

t.test('daily quotas across DST changes count 23- and 25-hour days', async (t) => {
  for (const [zone, day, start, end] of [
    ['Europe/Berlin', 'spring', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'],
    ['Europe/Berlin', 'autumn', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z'],
    ['America/New_York', 'spring', '2026-03-08T05:00:00.000Z', '2026-03-09T04:00:00.000Z'],
    ['America/New_York', 'autumn', '2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z']
  ] as const) {
    const driver = new Driver(new CalendarQuota({ period: 'day', zone }), 2)
    t.equal(driver.hit(at(start)).allowed, true, `${zone} ${day}: first instant of the day`)
    t.equal(driver.hit(at(end) - 1).allowed, true, `${zone} ${day}: last instant of the same day`)
    const refused = driver.hit(at(end) - 1)
    t.equal(refused.retryAfterMs, 1, `${zone} ${day}: one ms to the next day`)
    t.equal(driver.hit(at(end)).allowed, true, `${zone} ${day}: next day at local midnight, ${(at(end) - at(start)) / HOUR} h later`)
  }
})

t.test('billing day 31: the April cycle starts on 30 April and the May cycle on 31 May', async (t) => {
  const driver = new Driver(new CalendarQuota({ period: 'month', anchor: 31 }), 1)
  t.equal(driver.hit(at('2026-04-29T12:00:00.000Z')).allowed, true)
  const refused = driver.hit(at('2026-04-29T12:00:00.000Z'))
  t.equal(refused.retryAfterMs, 12 * HOUR, 'the next cycle begins at midnight of 30 April')
  const april = driver.hit(at('2026-04-30T00:00:00.000Z'))
  t.equal(april.allowed, true, 'a 30-day month: its last day is the billing day')
  t.equal(april.resetMs, 31 * DAY, 'and the cycle runs to 31 May')
})

t.test('rollover: unused quota carries into the next period up to the cap, only from the period just before', async (t) => {
  const quota = new CalendarQuota({ period: 'month', rollover: { cap: 4 } })
  const driver = new Driver(quota, 10)
  const jan = at('2026-01-10T00:00:00.000Z')
  t.equal(driver.hit(jan, 3).remaining, 7, 'January: 3 of 10 used')
  const feb = driver.hit(at('2026-02-10T00:00:00.000Z'))
  t.equal(driver.state![2], 4, 'February: min(4, 7) carried')
  t.equal(feb.limit, 10, 'the decision\'s limit is the rate\'s')
  t.equal(feb.remaining, 10, 'remaining (13 of the allowance of 14) is clamped to the limit')
  t.equal(driver.hit(at('2026-02-11T00:00:00.000Z'), 13).allowed, true, 'the whole allowance can be spent')
  const refused = driver.hit(at('2026-02-12T00:00:00.000Z'))
  t.equal(refused.allowed, false)
  t.equal(refused.retryAfterMs, at('2026-03-01T00:00:00.000Z') - at('2026-02-12T00:00:00.000Z'))
  t.equal(driver.hit(at('2026-03-02T00:00:00.000Z')).remaining, 9)
  t.equal(driver.state![2], 0, 'March: February spent its own 10 (carried quota is spent first), nothing carried')
  driver.hit(at('2026-05-02T00:00:00.000Z'))
  t.equal(driver.state![2], 0, 'May: no record of April, nothing carried')
  const big = new Driver(quota, 10)
  t.equal(big.hit(jan, 14).retryAfterMs, -1, 'no record of January (a rejection makes none): February carries nothing, waiting does not help')
  big.hit(jan, 0)
  const capped = big.hit(jan, 15)
  t.equal(capped.retryAfterMs, -1, 'a cost above the next period\'s allowance is not met by waiting')
  t.equal(big.hit(jan, 12).retryAfterMs, at('2026-02-01T00:00:00.000Z') - jan, 'a cost the next period holds (10 + 4) waits for it')
  t.equal(big.hit(at('2026-02-01T00:00:00.000Z'), 14).allowed, true, 'and is admitted then')
})

t.test('refunds give back to the current period only; an ended period\'s record is kept for rollover', async (t) => {
  const quota = new CalendarQuota({ period: 'day', rollover: { cap: 5 } })
  const day1 = at('2026-06-01T10:00:00.000Z')
  const day2 = at('2026-06-02T10:00:00.000Z')
  const b1 = quota.periods.bounds(day1)
  const b2 = quota.periods.bounds(day2)
  const charged = quota.step(undefined, day1, 5, 1000, 3, b1).state!
  const back = quota.refund(charged, day1 + 1, 5, 1000, 2, day1, b1)
  t.same(back.state, [b1[2], 1, 0], 'two of three given back')
  t.equal(back.decision.remaining, 4)
  const early = quota.refund(charged, day1 + 1, 5, 1000, 2, day1 - DAY, b1)
  t.same(early.state, charged, 'a charge of another period gives nothing back')
  const later = quota.refund(charged, day2, 5, 1000, 3, day1, b2)
  t.same(later.state, charged, 'the day is over: its record stays as it was')
  t.ok(later.ttlMs >= b2[3]! - day2, 'and lives until the current day ends')
  t.same(quota.refund(undefined, day2, 5, 1000, 1, day2, b2).state, null, 'nothing stored, nothing to give back')
  t.same(quota.refund([b1[0]!, 1, 0], day2, 5, 1000, 1, day2, b2).state, null, 'a record older than the period before is dropped')
  t.same(quota.refund(charged, day1, 5, 1000, 1, undefined, undefined).state, [b1[2], 2, 0], 'without bounds or chargedAt: computed from now')
})

t.test('the step picks the period of its own clock among the host\'s bounds, and never moves a record back', async (t) => {
  const quota = new CalendarQuota({ period: 'day' })
  const host = at('2026-06-01T23:59:00.000Z')
  const hostBounds = quota.periods.bounds(host)
  const backend = at('2026-06-02T00:00:30.000Z') // the backend's clock is already in the next day
  const step = quota.step(undefined, backend, 2, 1000, 1, hostBounds)
  t.same(step.state, [at('2026-06-02T00:00:00.000Z'), 1, 0], 'decided in the backend\'s day')
  const behind = quota.step(step.state!, host, 2, 1000, 1, hostBounds)
  t.same(behind.state, [at('2026-06-02T00:00:00.000Z'), 2, 0], 'a clock behind counts in the record\'s later day')
  t.equal(quota.step(undefined, host - 3 * DAY, 2, 1000, 1, hostBounds).state![0], hostBounds[1], 'far off clocks are clamped to the outer periods')
  t.equal(quota.step(undefined, host + 3 * DAY, 2, 1000, 1, hostBounds).state![0], hostBounds[3])
})

t.test('per-request anchors: the plan reads the request, each anchor gets its cycle', async (t) => {
  const quota = new CalendarQuota({ period: 'month', anchor: (request: { day: number }) => request.day })
  t.equal(quota.periods.anchorOf!({ day: 17 }), 17)
  const now = at('2026-12-04T00:00:00.000Z')
  t.equal(iso(quota.periods.bounds(now, 17)[2]!), '2026-11-17T00:00:00.000Z')
  t.equal(iso(quota.periods.bounds(now, 3)[2]!), '2026-12-03T00:00:00.000Z')
  t.equal(iso(quota.periods.bounds(now, '2020-02-05')[2]!), '2026-11-05T00:00:00.000Z')
  t.equal(iso(quota.periods.bounds(now, new Date('2020-02-04T23:30:00.000Z'))[2]!), '2026-12-04T00:00:00.000Z', 'a Date is read in the zone')
  t.throws(() => quota.periods.bounds(now, 32), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'a bad anchor from the function is a coded error')
  t.equal(iso(quota.periods.bounds(now)[2]!), '2026-12-01T00:00:00.000Z', 'no anchor: the 1st')
  const weekly = new CalendarQuota({ period: 'week', anchor: '2026-12-03' })
  t.equal(iso(weekly.periods.bounds(now)[2]!), '2026-12-03T00:00:00.000Z', 'a weekly cycle from a Thursday date')
})

t.test('options are validated with coded errors', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['unknown zone', { zone: 'Mars/Olympus_Mons' }],
    ['empty zone', { zone: '' }],
    ['zone not a string', { zone: 1 }],
    ['unknown period', { period: 'fortnight' }],
    ['anchor for a day', { period: 'day', anchor: 3 }],
    ['anchor day 0', { anchor: 0 }],
    ['anchor day 32', { anchor: 32 }],
    ['anchor weekday 8', { period: 'week', anchor: 8 }],
    ['a number for a year', { period: 'year', anchor: 5 }],
    ['anchor not a date', { anchor: 'someday' }],
    ['anchor 31 February', { anchor: '2026-02-31' }],
    ['anchor 13th month', { anchor: '2026-13-01' }],
    ['anchor invalid Date', { anchor: new Date(NaN) }],
    ['anchor of another type', { anchor: true }],
    ['rollover not an object', { rollover: 5 }],
    ['rollover null', { rollover: null }],
    ['rollover cap 0', { rollover: { cap: 0 } }],
    ['rollover cap fraction', { rollover: { cap: 1.5 } }],
    ['rollover extra key', { rollover: { cap: 1, max: 2 } }],
    ['unknown option', { month: 1 }],
    ['options not an object', 'month']
  ]
  for (const [label, options] of bad) {
    t.throws(() => new CalendarQuota(options as CalendarQuotaOptions), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, label)
  }
  const ok = new CalendarQuota()
  t.equal(ok.period, 'month')
  t.equal(ok.zone, 'UTC')
  t.equal(ok.rolloverCap, 0)
  t.equal(ok.name, 'calendar-quota')
  t.same(ok.decode('1,2'), undefined, 'a state of the wrong length is no state')
  t.same(ok.decode('1,-2,0'), undefined)
  t.same(ok.decode('1,2.5,0'), undefined)
  t.same(ok.decode(ok.encode([1, 2, 3])), [1, 2, 3])
})

// ---- property test against a reference model ----

const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago'] as const
const localDates = new Map<string, Intl.DateTimeFormat>()

/** The local date of instant `ms` in `zone`, as ms of its midnight read as UTC: the model's own reading of Intl. */
function civil (zone: string, ms: number): number {
  let format = localDates.get(zone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' })
    localDates.set(zone, format)
  }
  return Date.parse(`${format.format(ms)}T00:00:00Z`)
}

interface ModelConfig { zone: string, period: 'day' | 'week' | 'month' | 'year', anchor: number, cap: number }

/** The first civil day of the cycle holding civil day `day`. */
function cycleOf (c: ModelConfig, day: number): number {
  const d = new Date(day)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth()
  const clamp = (year: number, month: number, dd: number): number => Date.UTC(year, month, Math.min(dd, new Date(Date.UTC(year, month + 1, 0)).getUTCDate()))
  if (c.period === 'day') return day
  if (c.period === 'week') return day - ((((d.getUTCDay() + 6) % 7) + 1 - c.anchor + 7) % 7) * DAY
  if (c.period === 'month') return day >= clamp(y, m, c.anchor) ? clamp(y, m, c.anchor) : clamp(y, m - 1, c.anchor)
  const [am, ad] = [Math.floor(c.anchor / 100) - 1, c.anchor % 100]
  return day >= clamp(y, am, ad) ? clamp(y, am, ad) : clamp(y - 1, am, ad)
}

/** The instant the cycle holding `now` ends: found by bisection on the model's own cycle function. */
function cycleEnd (c: ModelConfig, now: number): number {
  const here = cycleOf(c, civil(c.zone, now))
  let lo = now
  let hi = now + 400 * DAY
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (cycleOf(c, civil(c.zone, mid)) === here) lo = mid
    else hi = mid
  }
  return hi
}

t.test('property: decisions, remaining, carried allowance and reset match the reference model', async (t) => {
  const anchors = { day: [0], week: [1, 3, 7], month: [1, 17, 29, 31], year: [101, 229, 1231] }
  const config = fc.constantFrom(...ZONES).chain((zone) => fc.constantFrom('day', 'week', 'month', 'year' as const).chain((period) =>
    fc.record({ zone: fc.constant(zone), period: fc.constant(period), anchor: fc.constantFrom(...anchors[period]), cap: fc.constantFrom(0, 0, 2, 5, 12) })))
  const event = fc.record({
    gap: fc.oneof(fc.integer({ min: 0, max: 10 * 60_000 }), fc.integer({ min: 0, max: 3 * DAY }), fc.integer({ min: 0, max: 40 * DAY })),
    cost: fc.integer({ min: 0, max: 6 }),
    mode: fc.constantFrom('hit', 'hit', 'hit', 'check', 'refund'),
    skew: fc.integer({ min: -HOUR, max: HOUR })
  })
  const start = fc.integer({ min: at('2025-01-01T00:00:00.000Z'), max: at('2027-12-31T00:00:00.000Z') })
  let steps = 0
  fc.assert(fc.property(config, start, fc.array(event, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 8 }), (c, t0, events, limit) => {
    const anchor = c.period === 'year' ? `2024-${String(Math.floor(c.anchor / 100)).padStart(2, '0')}-${String(c.anchor % 100).padStart(2, '0')}` : c.anchor
    const quota = new CalendarQuota({ period: c.period, zone: c.zone, ...(c.period === 'day' ? {} : { anchor }), ...(c.cap > 0 ? { rollover: { cap: c.cap } } : {}) })
    // the model: per cycle, what was used and carried; a record exists for cycles with an admitted hit
    const records = new Map<number, { used: number, carried: number }>()
    let stored: StrategyState | undefined
    let expires = 0
    let now = t0
    for (const e of events) {
      now += e.gap
      steps++
      if (stored !== undefined && now >= expires) stored = undefined
      const bounds = quota.periods.bounds(now + e.skew)
      const cycle = cycleOf(c, civil(c.zone, now))
      const before = cycleOf(c, cycle - DAY)
      const previous = records.get(before)
      const record = records.get(cycle) ?? { used: 0, carried: previous === undefined || c.cap === 0 ? 0 : Math.min(c.cap, Math.max(0, limit - Math.max(0, previous.used - previous.carried))) }
      const allowance = limit + record.carried
      const result = e.mode === 'refund'
        ? quota.refund(stored, now, limit, 1000, e.cost, now, bounds)
        : quota.step(stored, now, limit, 1000, e.cost, bounds)
      const d = result.decision
      const context = { c, limit, now: iso(now), e, record, stored }
      if (e.mode === 'refund') {
        if (records.has(cycle)) {
          record.used = Math.max(0, record.used - e.cost)
          if (d.remaining !== Math.max(0, Math.min(limit, allowance - record.used))) throw new Error(`refund remaining ${d.remaining}: ${JSON.stringify(context)}`)
        }
      } else {
        const allowed = record.used + e.cost <= allowance
        if (d.allowed !== allowed) throw new Error(`allowed ${String(d.allowed)}: ${JSON.stringify(context)}`)
        if (d.limit !== limit) throw new Error(`limit ${d.limit} != ${limit}: ${JSON.stringify(context)}`)
        const end = cycleEnd(c, now)
        if (d.resetMs !== end - now) throw new Error(`resetMs ${d.resetMs} != ${end - now}: ${JSON.stringify(context)}`)
        if (allowed) {
          if (d.remaining !== Math.min(limit, allowance - record.used - e.cost)) throw new Error(`remaining ${d.remaining}: ${JSON.stringify(context)}`)
          if (e.mode === 'hit') {
            record.used += e.cost
            records.set(cycle, record)
          }
        } else {
          const nextCarried = c.cap === 0 || !records.has(cycle) ? 0 : Math.min(c.cap, Math.max(0, limit - Math.max(0, record.used - record.carried)))
          const retry = e.cost > limit + nextCarried ? -1 : end - now
          if (d.retryAfterMs !== retry) throw new Error(`retryAfterMs ${d.retryAfterMs} != ${retry}: ${JSON.stringify(context)}`)
          if (d.remaining !== Math.max(0, Math.min(limit, allowance - record.used))) throw new Error(`remaining ${d.remaining}: ${JSON.stringify(context)}`)
        }
      }
      if ((e.mode === 'hit' && d.allowed) || e.mode === 'refund') {
        stored = result.state ?? undefined
        expires = now + result.ttlMs
      }
    }
  }), { numRuns: NUM_RUNS })
  t.pass(`${NUM_RUNS} timelines, ${steps} steps agree with the model`)
})
