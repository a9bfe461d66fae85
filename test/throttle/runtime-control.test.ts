import t from 'tap'
import { TokenBucket } from '../../lib/index.js'
import { buildApp } from '../helpers/build-app.js'

const ok = async (): Promise<string> => 'ok'

async function burst (app: Awaited<ReturnType<typeof buildApp>>['app'], n: number, url = '/'): Promise<number[]> {
  const responses = await Promise.all(Array.from({ length: n }, async () => await app.inject(url)))
  return responses.map((r) => r.statusCode)
}
const count = (statuses: number[], status: number): number => statuses.filter((s) => s === status).length

t.test('updateRate on live traffic: concurrent requests see exactly the new limit', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'live', rate: '10/min' } } }, ok)
  })
  const first = await burst(app, 20)
  t.equal(count(first, 200), 10)
  t.equal(count(first, 429), 10)
  app.throttle.get('live')!.updateRate('15/min')
  const second = await burst(app, 10)
  t.equal(count(second, 200), 5, 'the counter carried over; only the raise is admitted')
  t.equal((await app.inject('/')).headers['x-ratelimit-limit'], '15')
  app.throttle.get('live')!.updateRate({ limit: 3, windowMs: 60_000 })
  t.equal(count(await burst(app, 5), 429), 5, 'lowered below the count: everything is rejected until the window ends')
})

t.test('updateCost and updateStrategy on live traffic', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'shape', rate: '12/min' } } }, ok)
  })
  const throttle = app.throttle.get('shape')!
  throttle.updateCost(4)
  t.same(await burst(app, 4).then((s) => [count(s, 200), count(s, 429)]), [3, 1], 'cost 4 of 12: three fit')
  throttle.updateCost((request) => request.headers['x-free'] === '1' ? 0 : 1)
  t.equal((await app.inject({ url: '/', headers: { 'x-free': '1' } })).statusCode, 200, 'cost functions can be set live')

  clock.advance(60_000)
  throttle.updateStrategy(new TokenBucket())
  throttle.updateCost(1)
  const statuses = await burst(app, 20)
  t.equal(count(statuses, 200), 12, 'the token bucket admits its burst of 12')
  t.equal(count(statuses, 429), 8)
  clock.advance(5_000)
  t.same(await burst(app, 3).then((s) => count(s, 200)), 1, 'and refills one token per 5 s')
})

t.test('disable / enable, disableAll / enableAll and get(uid) while requests are in flight', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'a', rate: '2/min' } } }, ok)
    app.get('/b', { config: { rateLimit: [{ uid: 'b1', rate: '1/min' }, { uid: 'b2', rate: '5/min' }] } }, ok)
  })
  t.same(count(await burst(app, 5), 200), 2)
  const inFlight = burst(app, 5)
  app.throttle.get('a')!.disable()
  const during = await inFlight
  t.same(count(during, 200), 5, 'requests already injected but not yet decided see the disabled throttle')
  const disabled = await app.inject('/')
  t.equal(disabled.statusCode, 200)
  t.notOk(disabled.headers['x-ratelimit-limit'], 'a disabled throttle sends no headers')
  app.throttle.get('a')!.enable()
  t.same(count(await burst(app, 3), 429), 3, 'enabled again: the old count still applies')

  app.throttle.disableAll()
  t.same(count(await burst(app, 6, '/b'), 200), 6)
  t.ok(app.throttle.get('b1')!.disabled && app.throttle.get('b2')!.disabled)
  app.throttle.enableAll()
  t.same(await burst(app, 2, '/b'), [200, 429], 'both limits of /b are back')
  t.equal(app.throttle.get('missing'), undefined)
  t.same([...app.throttle.throttles.keys()].sort(), ['a', 'b1', 'b2'])
})
