import t from 'tap'
import {
  FixedWindow, GCRA, InMemoryBackend, LeakyBucket, LeakyBucketWithQueue, ManualClock, SlidingWindowCounter, SlidingWindowLog,
  TokenBucket, TokenBucketWithDebt, createThrottle, reserveAll, type Strategy
} from '../../lib/index.js'
import { buildApp } from '../helpers/build-app.js'

t.test('a quota block never runs its work and then answers 429', async (t) => {
  let workRuns = 0
  let failNext = false
  const { app } = await buildApp(t, {}, (app) => {
    const quota = app.throttle.create({ uid: 'exports', rate: '10/hour' })
    app.post('/export', async (request, reply) => {
      const cost = Number(request.headers['x-rows'] ?? 1)
      const reservation = await quota.reserve(request, { cost })
      if (!reservation.decision.allowed) {
        return await reply.code(429).send({ error: 'quota exceeded', remaining: reservation.decision.remaining })
      }
      try {
        workRuns++
        if (failNext) throw new Error('export failed')
        reservation.commit()
        return { exported: cost, remaining: reservation.decision.remaining }
      } catch (error) {
        await reservation.refund()
        throw error
      }
    })
  })
  const post = async (rows: number) => await app.inject({ method: 'POST', url: '/export', headers: { 'x-rows': String(rows) } })
  t.same((await post(6)).json(), { exported: 6, remaining: 4 })
  t.equal(workRuns, 1)

  const tooMuch = await post(5)
  t.equal(tooMuch.statusCode, 429, 'rejected before any work')
  t.same(tooMuch.json(), { error: 'quota exceeded', remaining: 4 })
  t.equal(workRuns, 1, 'the work did not run')

  failNext = true
  t.equal((await post(4)).statusCode, 500, 'the work ran on reserved capacity and failed')
  t.equal(workRuns, 2)
  failNext = false
  t.same((await post(4)).json(), { exported: 4, remaining: 0 }, 'the refund gave the 4 units back')
  t.equal(workRuns, 3)
})

t.test('rejected reservations charge nothing; commit and refund are one-shot', async (t) => {
  const clock = new ManualClock()
  const throttle = createThrottle({ uid: 'r', rate: '3/min', backend: new InMemoryBackend({ clock }) })
  const client = { ip: '10.0.0.1' }
  const rejected = await throttle.reserve(client, { cost: 4 })
  t.equal(rejected.decision.allowed, false)
  t.equal(rejected.state, 'rejected')
  rejected.commit()
  t.equal(await rejected.refund(), false, 'nothing to refund')
  t.equal((await throttle.stat(client)).remaining, 3, 'nothing was charged')

  const kept = await throttle.reserve(client, { cost: 2 })
  t.equal(kept.state, 'reserved')
  kept.commit()
  t.equal(kept.state, 'committed')
  t.equal(await kept.refund(), false, 'a committed reservation keeps its charge')
  t.equal((await throttle.stat(client)).remaining, 1)

  const given = await throttle.reserve(client, { cost: 1 })
  t.equal(await given.refund(), true)
  t.equal(await given.refund(), false, 'a second refund gives nothing more')
  t.equal(given.state, 'refunded')
  given.commit()
  t.equal(given.state, 'refunded', 'commit after refund changes nothing')
  t.equal((await throttle.stat(client)).remaining, 1)
})

t.test('reserveAll: all-or-nothing across throttles and backends; refund returns every charge', async (t) => {
  const clock = new ManualClock()
  const a = new InMemoryBackend({ clock })
  const b = new InMemoryBackend({ clock })
  const perMinute = createThrottle({ uid: 'per-minute', rate: '5/min', backend: a })
  const perDay = createThrottle({ uid: 'per-day', rate: '8/day', backend: b })
  const perDaySameBackend = createThrottle({ uid: 'per-day-a', rate: '8/day', backend: a })
  const client = { ip: '10.0.0.2' }

  const first = await reserveAll(client, [perMinute, perDay, perDaySameBackend], { cost: 4 })
  t.equal(first.decision.allowed, true)
  t.same(first.outcome?.decisions.map((d) => d.remaining), [1, 4, 4])
  t.equal(first.decision.remaining, 1, 'the most restrictive limit is reported')

  const second = await reserveAll(client, [perMinute, perDay, perDaySameBackend], { cost: 2 })
  t.equal(second.decision.allowed, false, 'the per-minute limit rejects')
  t.equal((await perDay.stat(client)).remaining, 4, 'the other backend was not charged (or was refunded)')
  t.equal((await perDaySameBackend.stat(client)).remaining, 4, 'the same backend was not charged')

  t.equal(await first.refund(), true)
  t.same(await Promise.all([perMinute.stat(client), perDay.stat(client), perDaySameBackend.stat(client)]).then((ds) => ds.map((d) => d.remaining)), [5, 8, 8])
})

t.test('reservations respect rules and exemptions: nothing applies, nothing to refund', async (t) => {
  const { bypassIf } = await import('../../lib/index.js')
  const throttle = createThrottle({ uid: 'x', rate: '1/min', rules: [bypassIf({ methods: 'GET' })] })
  const reservation = await throttle.reserve({ ip: '1.2.3.4', method: 'GET', url: '/' })
  t.equal(reservation.decision.allowed, true)
  t.equal(reservation.outcome, undefined)
  t.equal(await reservation.refund(), false)
})

const strategies: Array<[string, Strategy]> = [
  ['FixedWindow', new FixedWindow()],
  ['SlidingWindowCounter', new SlidingWindowCounter()],
  ['SlidingWindowLog', new SlidingWindowLog()],
  ['TokenBucket', new TokenBucket()],
  ['TokenBucketWithDebt', new TokenBucketWithDebt({ maxDebt: 2 })],
  ['LeakyBucket', new LeakyBucket({ burst: 4 })],
  ['LeakyBucketWithQueue', new LeakyBucketWithQueue({ maxDelayMs: 60_000 })],
  ['GCRA', new GCRA({ burst: 4 })]
]

for (const [name, strategy] of strategies) {
  t.test(`${name}: a refund right after a reservation restores the capacity`, async (t) => {
    const clock = new ManualClock(1_700_000_040_000)
    const throttle = createThrottle({ uid: `refund-${name}`, rate: '4/min', strategy, backend: new InMemoryBackend({ clock }) })
    const client = { ip: '10.1.1.1' }
    await throttle.hit(client)
    clock.advance(1000)
    const before = await throttle.stat(client)
    const reservation = await throttle.reserve(client, { cost: 2 })
    t.equal(reservation.decision.allowed, true)
    t.ok((await throttle.stat(client)).remaining < before.remaining, 'the reservation charged')
    t.equal(await reservation.refund(), true)
    const after = await throttle.stat(client)
    t.equal(after.remaining, before.remaining, 'remaining is back')
    t.equal((await throttle.check(client, { cost: before.remaining })).allowed, before.remaining > 0, 'the same cost fits again')
  })
}
