/**
 * The rate-function helpers: `tieredRate` (a plan table → rate) and `timeOfDay` (hours of the day
 * in a time zone → a multiplier of the base rate), alone, composed, through the plugin, and with
 * every bad option failing at once with a coded error.
 */
import t from 'tap'
import { ManualClock, parseRate, tieredRate, timeOfDay, type Rate, type RateInput, type TimeOfDayOptions } from '../../lib/index.js'
import { buildApp } from '../helpers/build-app.js'

const at = (iso: string): number => Date.parse(iso)
const limitOf = async (value: RateInput | Promise<RateInput>): Promise<number> => parseRate(await value).limit

t.test('tieredRate: each plan its rate, null for unlimited, unknown plans refused or sent to the fallback', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/api', {
      config: {
        rateLimit: {
          rate: tieredRate({ free: '2/min', pro: '4/min', internal: null }, (request) => request.headers['x-plan'] as string | undefined),
          identifier: (request) => String(request.headers['x-client'])
        }
      }
    }, async () => 'ok')
    app.get('/lenient', {
      config: { rateLimit: { rate: tieredRate({ free: '1/min', pro: '3/min' }, async (request) => request.headers['x-plan'] as string, { fallback: 'free' }), identifier: (request) => String(request.headers['x-client']) } }
    }, async () => 'ok')
  })
  const burst = async (url: string, plan: string, client: string, n: number): Promise<number[]> => {
    const codes: number[] = []
    for (let i = 0; i < n; i++) codes.push((await app.inject({ url, headers: { 'x-plan': plan, 'x-client': client } })).statusCode)
    return codes
  }
  t.same(await burst('/api', 'free', 'a', 3), [200, 200, 429], 'free: 2 a minute')
  t.same(await burst('/api', 'pro', 'b', 5), [200, 200, 200, 200, 429], 'pro: 4 a minute')
  const internal = await app.inject({ url: '/api', headers: { 'x-plan': 'internal', 'x-client': 'c' } })
  t.equal(internal.statusCode, 200)
  t.equal(internal.headers['x-ratelimit-limit'], undefined, 'unlimited: no limit, no headers')
  const typo = await app.inject({ url: '/api', headers: { 'x-plan': 'prо', 'x-client': 'd' } })
  t.equal(typo.statusCode, 500, 'a plan the table does not know never passes unlimited')
  t.equal(typo.json().code, 'TRAFFIK_ERR_INVALID_OPTION')
  t.match(typo.json().message, /free, pro, internal/)
  t.same(await burst('/lenient', 'gold', 'e', 2), [200, 429], 'an unknown plan with a fallback gets the fallback\'s rate (async planOf)')
  t.same(await burst('/lenient', 'pro', 'f', 4), [200, 200, 200, 429])
})

t.test('tieredRate validates its table, function and options at once', async (t) => {
  const bad: Array<[string, () => unknown, string]> = [
    ['a bad rate names the plan', () => tieredRate({ free: '10/fortnight' }, () => 'free'), 'TRAFFIK_ERR_INVALID_RATE'],
    ['an empty table', () => tieredRate({}, () => 'free'), 'TRAFFIK_ERR_INVALID_OPTION'],
    ['a table that is not an object', () => tieredRate(null as never, () => 'free'), 'TRAFFIK_ERR_INVALID_OPTION'],
    ['an array table', () => tieredRate(['1/s'] as never, () => 'free'), 'TRAFFIK_ERR_INVALID_OPTION'],
    ['planOf not a function', () => tieredRate({ free: '1/s' }, 'free' as never), 'TRAFFIK_ERR_INVALID_OPTION'],
    ['a fallback not in the table', () => tieredRate({ free: '1/s' }, () => 'free', { fallback: 'gold' }), 'TRAFFIK_ERR_INVALID_OPTION'],
    ['an unknown option', () => tieredRate({ free: '1/s' }, () => 'free', { default: 'free' } as never), 'TRAFFIK_ERR_INVALID_OPTION'],
    ['options not an object', () => tieredRate({ free: '1/s' }, () => 'free', null as never), 'TRAFFIK_ERR_INVALID_OPTION']
  ]
  for (const [label, make, code] of bad) t.throws(make, { code }, label)
  t.throws(() => tieredRate({ free: '10/fortnight' }, () => 'free'), /tieredRate\.free/, 'the error names the plan')
  t.equal(await limitOf(tieredRate({ a: { limit: 7, windowMs: 1000 } }, () => 'a')({} as never)), 7, 'rate objects work too')
})

const week: TimeOfDayOptions['windows'] = [
  { from: '09:00', to: '17:00', multiplier: 0.5, days: [1, 2, 3, 4, 5] },
  { from: '22:00', to: '06:00', multiplier: 2, days: [5] },
  { from: '22:00', to: '06:00', multiplier: 1.5 }
]

t.test('timeOfDay: the first window holding the local time scales the base; outside every window, the base', async (t) => {
  const clock = new ManualClock()
  const rate = timeOfDay({ zone: 'Europe/Berlin', base: '100/min', windows: week, clock })
  const table: Array<[string, string, number]> = [
    // [label, instant (UTC), expected limit]
    ['Monday 10:00 Berlin (08:00 UTC in winter): office hours', '2026-12-07T09:00:00Z', 50],
    ['Monday 08:59 Berlin: before office hours', '2026-12-07T07:59:00Z', 100],
    ['Monday 17:00 Berlin: the end is exclusive', '2026-12-07T16:00:00Z', 100],
    ['Saturday 10:00 Berlin: not an office day', '2026-12-12T09:00:00Z', 100],
    ['Monday 23:00 Berlin: the nightly window', '2026-12-07T22:00:00Z', 150],
    ['Tuesday 05:59 Berlin: still the night of Monday', '2026-12-08T04:59:00Z', 150],
    ['Friday 23:00 Berlin: the Friday night window comes first', '2026-12-11T22:00:00Z', 200],
    ['Saturday 03:00 Berlin: Friday night, past midnight', '2026-12-12T02:00:00Z', 200],
    ['Saturday 23:00 Berlin: an ordinary night', '2026-12-12T22:00:00Z', 150],
    ['summer time: Monday 09:00 Berlin is 07:00 UTC', '2026-07-06T07:00:00Z', 50],
    ['summer time: Monday 08:59 Berlin', '2026-07-06T06:59:00Z', 100],
    ['the day the clocks go forward (Sunday): 03:30 Berlin is night', '2026-03-29T01:30:00Z', 150]
  ]
  for (const [label, instant, limit] of table) {
    clock.set(at(instant))
    t.equal(await limitOf(rate({} as never)), limit, label)
  }
  clock.set(at('2026-12-07T09:00:30Z'))
  t.equal(await limitOf(rate({} as never)), 50, 'the same minute again (cached)')
  clock.set(at('2026-12-07T07:59:59Z'))
  t.equal(await limitOf(rate({} as never)), 100, 'a clock that steps back is read again')
  const rounding = timeOfDay({ base: '100/min', windows: [{ from: '00:00', to: '24:00', multiplier: 0.29 }], clock })
  t.equal(await limitOf(rounding({} as never)), 29, '100 × 0.29 is 29 (rounded down, without binary noise)')
  t.same(parseRate(await rounding({} as never)).windowMs, 60_000, 'the window is the base\'s')
  const unlimited = timeOfDay({ base: null, windows: [{ from: '00:00', to: '24:00', multiplier: 0.5 }], clock })
  t.equal((await unlimited({} as never) as Rate).unlimited, true, 'unlimited stays unlimited')
})

t.test('timeOfDay over tieredRate, through the plugin: a plan\'s rate halved in office hours, 0 closes', async (t) => {
  const hours = new ManualClock()
  const { app, clock } = await buildApp(t, {}, (app) => {
    const plans = tieredRate({ free: '4/min', pro: '10/min' }, async (request) => request.headers['x-plan'] as string)
    app.get('/api', {
      config: {
        rateLimit: {
          rate: timeOfDay({ zone: 'America/New_York', base: plans, windows: [{ from: '09:00', to: '17:00', multiplier: 0.5 }, { from: '02:00', to: '03:00', multiplier: 0 }], clock: hours }),
          identifier: (request) => String(request.headers['x-plan'])
        }
      }
    }, async () => 'ok')
  })
  const set = (instant: string): void => { clock.set(at(instant)); hours.set(at(instant)) }
  const ask = async (plan: string): Promise<{ status: number, limit: string | undefined }> => {
    const response = await app.inject({ url: '/api', headers: { 'x-plan': plan } })
    return { status: response.statusCode, limit: response.headers['x-ratelimit-limit'] as string | undefined }
  }
  set('2026-12-07T15:00:00Z') // 10:00 in New York
  const free = [await ask('free'), await ask('free'), await ask('free')]
  t.same(free.map((a) => a.status), [200, 200, 429], 'free at peak: 2 a minute')
  t.equal(free[0]!.limit, '2')
  t.equal((await ask('pro')).limit, '5', 'pro at peak: 5')
  set('2026-12-08T07:30:00Z') // 02:30 in New York
  t.equal((await ask('pro')).status, 429, 'multiplier 0: closed')
  set('2026-12-08T09:00:00Z') // 04:00 in New York
  t.equal((await ask('pro')).limit, '10', 'off peak: the plan\'s rate')
})

t.test('timeOfDay validates its options at once', async (t) => {
  const base = '10/min'
  const window = { from: '09:00', to: '17:00', multiplier: 0.5 }
  const bad: Array<[string, unknown, string]> = [
    ['options not an object', null, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['unknown option', { base, windows: [], hours: [] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['unknown zone', { zone: 'Europe/Atlantis', base, windows: [] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['no base', { windows: [] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['bad base', { base: 'ten a minute', windows: [] }, 'TRAFFIK_ERR_INVALID_RATE'],
    ['windows not an array', { base, windows: window }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['window not an object', { base, windows: ['09-17'] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['window with an unknown key', { base, windows: [{ ...window, until: '18:00' }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['from not HH:MM', { base, windows: [{ ...window, from: '9am' }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['from 24:00', { base, windows: [{ ...window, from: '24:00' }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['to 25:00', { base, windows: [{ ...window, to: '25:00' }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['minutes 60', { base, windows: [{ ...window, to: '17:60' }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['a window of no length', { base, windows: [{ ...window, to: '09:00' }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['negative multiplier', { base, windows: [{ ...window, multiplier: -1 }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['infinite multiplier', { base, windows: [{ ...window, multiplier: Infinity }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['days empty', { base, windows: [{ ...window, days: [] }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['day 0', { base, windows: [{ ...window, days: [0] }] }, 'TRAFFIK_ERR_INVALID_OPTION'],
    ['bad clock', { base, windows: [], clock: {} }, 'TRAFFIK_ERR_INVALID_OPTION']
  ]
  for (const [label, options, code] of bad) t.throws(() => timeOfDay(options as TimeOfDayOptions), { code }, label)
  t.throws(() => timeOfDay({ base, windows: [{ ...window, from: '9am' }] }), /timeOfDay\.windows\[0\]\.from/, 'the error names the window and the field')
  t.equal(await limitOf(timeOfDay({ base, windows: [] })({} as never)), 10, 'no windows: the base, on the system clock')
})
