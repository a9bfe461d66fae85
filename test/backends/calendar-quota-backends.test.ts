/**
 * CalendarQuota through the plugin on every kind of backend: InMemory with a manual clock (a month
 * end and a billing day of 31 crossed by hand, per-client anchors from the request), and real
 * Redis (one round trip), real Memcached (compare-and-swap) and a custom backend (the generic
 * locked evaluate) on the real clock, two apps sharing one budget. Headers give the real period
 * end: `x-ratelimit-reset` and `retry-after` are the seconds to the period's end, rounded up.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { CalendarQuota, MemcachedBackend, RedisBackend, traffik, type ThrottleBackend } from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'
import { privateRedis, redisScriptCalls } from '../../scripts/support/redis-commands.js'
import { buildApp } from '../helpers/build-app.js'
import { CommandedBackend } from '../reliability/commanded-backend.js'

const at = (iso: string): number => Date.parse(iso)

t.test('in memory: per-client billing days from the request, a 30-day month, headers to the real cycle end', async (t) => {
  const quota = new CalendarQuota({ period: 'month', zone: 'Europe/Berlin', anchor: async (request: { headers: Record<string, unknown> }) => Number(request.headers['x-billing-day']) })
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/export', { config: { rateLimit: { rate: '2/day', strategy: quota, identifier: (r) => String(r.headers['x-client']) } } }, async () => 'ok')
  })
  const ask = async (client: string, day: number) => await app.inject({ url: '/export', headers: { 'x-client': client, 'x-billing-day': String(day) } })
  clock.set(at('2026-04-29T20:00:00.000Z')) // 22:00 in Berlin, 29 April
  t.equal((await ask('a', 31)).statusCode, 200)
  const second = await ask('a', 31)
  t.equal(second.headers['x-ratelimit-remaining'], '0')
  t.equal(second.headers['x-ratelimit-reset'], String(2 * 3600), 'the cycle of billing day 31 ends at Berlin midnight of 30 April')
  const refused = await ask('a', 31)
  t.equal(refused.statusCode, 429)
  t.equal(refused.headers['retry-after'], String(2 * 3600))
  const other = await ask('b', 17)
  t.equal(other.statusCode, 200, 'another client, another budget')
  t.equal(other.headers['x-ratelimit-reset'], String((at('2026-05-16T22:00:00.000Z') - clock.now()) / 1000), 'billing day 17: to 17 May, Berlin midnight')
  clock.set(at('2026-04-29T22:00:00.000Z'))
  const fresh = await ask('a', 31)
  t.equal(fresh.statusCode, 200, '30 April 00:00 in Berlin: a new cycle')
  t.equal(fresh.headers['x-ratelimit-reset'], String((at('2026-05-30T22:00:00.000Z') - clock.now()) / 1000), 'running to 31 May')
  const bad = await ask('c', 40)
  t.equal(bad.statusCode, 500, 'an anchor out of range fails that request through Fastify\'s error handling')
  t.equal(bad.json().code, 'TRAFFIK_ERR_INVALID_OPTION')
})

t.test('in memory: rollover through the plugin', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '5/day', strategy: new CalendarQuota({ period: 'week', rollover: { cap: 3 } }) } } }, async () => 'ok')
  })
  clock.set(at('2026-11-30T10:00:00.000Z')) // a Monday
  t.equal((await app.inject('/')).headers['x-ratelimit-limit'], '5')
  clock.set(at('2026-12-07T10:00:00.000Z'))
  const answers = []
  for (let i = 0; i < 9; i++) answers.push(await app.inject('/'))
  t.same(answers.map((a) => a.statusCode), [200, 200, 200, 200, 200, 200, 200, 200, 429], 'the week before left 4 unused: 3 carried (the cap), 8 this week')
  t.same(answers.map((a) => a.headers['x-ratelimit-remaining']), ['5', '5', '5', '4', '3', '2', '1', '0', '0'], 'remaining is clamped to the limit')
  t.equal(answers[0]!.headers['x-ratelimit-limit'], '5')
})

/** An app on `backend` with one calendar-quota route of 3 a day in Kiritimati (UTC+14). */
async function appOn (t: Test, backend: ThrottleBackend): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend })
  app.get('/', { config: { rateLimit: { uid: 'calendar', rate: '3/day', strategy: new CalendarQuota({ period: 'day', zone: 'Pacific/Kiritimati' }) } } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

async function sharedBudget (t: Test, make: () => ThrottleBackend): Promise<void> {
  const quota = new CalendarQuota({ period: 'day', zone: 'Pacific/Kiritimati' })
  const [one, two] = [await appOn(t, make()), await appOn(t, make())]
  const codes: number[] = []
  for (const app of [one, two, one, two]) codes.push((await app.inject('/')).statusCode)
  t.same(codes, [200, 200, 200, 429], 'two apps share one daily budget')
  const before = Date.now()
  const refused = await one.inject('/')
  const after = Date.now()
  const retry = Number(refused.headers['retry-after'])
  // The day's end as the host sees it, bracketed by the times around the request.
  const latest = Math.ceil((quota.periods.bounds(before)[3]! - before) / 1000)
  const earliest = Math.ceil((quota.periods.bounds(after)[3]! - after) / 1000)
  t.ok(retry >= earliest && retry <= latest, `retry-after ${retry} s is the time to Kiritimati midnight (${earliest}–${latest} s)`)
  t.equal(refused.headers['x-ratelimit-reset'], refused.headers['retry-after'])
}

t.test('Redis: one round trip per decision, shared budget, headers to the zone\'s midnight', async (t) => {
  const url = await sharedRedisUrl()
  const namespace = uniqueNamespace('cal')
  await sharedBudget(t, () => new RedisBackend(url, { namespace, timeoutMs: 5000 }))
  // A private server for the count: commandstats of the shared one would count other test files' commands.
  const { url: privateUrl, probe, stop } = await privateRedis()
  t.teardown(stop)
  const backend = new RedisBackend(privateUrl, { namespace: uniqueNamespace('cal'), timeoutMs: 5000 })
  const app = await appOn(t, backend)
  await app.inject('/')
  const calls = async (): Promise<number> => await redisScriptCalls(probe)
  const before = await calls()
  await app.inject('/')
  t.equal(await calls() - before, 1, 'one script call decides the request')
})

t.test('Memcached: compare-and-swap, shared budget, headers to the zone\'s midnight', async (t) => {
  const servers = await sharedMemcachedServers()
  const namespace = uniqueNamespace('cal')
  await sharedBudget(t, () => new MemcachedBackend(servers, { namespace, timeoutMs: 5000 }))
})

t.test('a custom backend: the generic locked evaluate runs the same step', async (t) => {
  const store = new CommandedBackend({ timeoutMs: 0 })
  await sharedBudget(t, () => store)
})
