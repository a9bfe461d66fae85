/**
 * The default clock follows `Date.now` as it is when asked, so an app's tests that mock the time
 * (`node:test` mock timers) move the limiter's windows too.
 */
import { mock } from 'node:test'
import Fastify from 'fastify'
import t from 'tap'
import { traffik } from '../../lib/index.js'

t.test('node:test mock timers move the default clock', async (t) => {
  mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 })
  t.teardown(() => { mock.timers.reset() })
  const app = Fastify()
  await app.register(traffik)
  app.get('/', { config: { rateLimit: { rate: '1/min' } } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  t.same([(await app.inject('/')).statusCode, (await app.inject('/')).statusCode], [200, 429])
  mock.timers.tick(60_000)
  t.equal((await app.inject('/')).statusCode, 200, 'a minute later by the mocked clock, a new window')
})
