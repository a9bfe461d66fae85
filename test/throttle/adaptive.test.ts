/**
 * Adaptive limits (`adaptive` throttle option): the effective limit follows the server's
 * pressure, lower priority classes shedding first; with a signal of the user's, exactly; with
 * the event loop, a real blocked loop sheds the low class and the limits recover once it stops
 * (the times are reported, not asserted: bounds only guard against hanging).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import { TokenBucket, createThrottle, traffik } from '../../lib/index.js'

const shares = { critical: 1, batch: 0.3 }

async function buildApp (adaptive: unknown): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { overrides: false })
  app.get('/api', {
    config: {
      rateLimit: {
        rate: '100/min',
        identifier: (request) => String(request.headers['x-client']),
        priority: { of: (request) => String(request.headers['x-class']), shares },
        adaptive: adaptive as never
      }
    }
  }, async () => 'ok')
  await app.ready()
  return app
}

let clients = 0
/** The limit a fresh client of this class is decided against now (its first request's header). */
async function limitNow (app: FastifyInstance, cls: string): Promise<{ status: number, limit: number }> {
  const res = await app.inject({ url: '/api', headers: { 'x-class': cls, 'x-client': `c${clients++}` } })
  return { status: res.statusCode, limit: Number(res.headers['x-ratelimit-limit']) }
}

t.test("a signal of the user's: the limit follows the pressure, the low class shedding first", async (t) => {
  let pressure: unknown = 0
  const app = await buildApp({ signal: () => pressure, minFactor: 0.5 })
  t.teardown(async () => { await app.close() })
  t.same(await limitNow(app, 'batch'), { status: 200, limit: 30 }, 'no pressure: the share')
  t.same(await limitNow(app, 'critical'), { status: 200, limit: 100 })
  pressure = 0.5
  t.same(await limitNow(app, 'batch'), { status: 200, limit: 15 }, 'half: the low class keeps half its share')
  t.same(await limitNow(app, 'critical'), { status: 200, limit: 75 }, 'the top class loses half of what minFactor lets go')
  pressure = 1
  t.equal((await limitNow(app, 'batch')).status, 429, 'full pressure: the low class is shed')
  t.same(await limitNow(app, 'critical'), { status: 200, limit: 50 }, 'the top class keeps minFactor')
  pressure = 7
  t.same(await limitNow(app, 'critical'), { status: 200, limit: 50 }, 'above 1 counts as 1')
  for (const nonsense of [Number.NaN, -1, 'high', undefined]) {
    pressure = nonsense
    t.same(await limitNow(app, 'batch'), { status: 200, limit: 30 }, `a signal answering ${String(nonsense)} counts as no pressure`)
  }
})

t.test('the event loop: blocking it sheds the low class, and the limits recover after', async (t) => {
  const app = await buildApp(true)
  t.teardown(async () => { await app.close() })
  t.same(await limitNow(app, 'batch'), { status: 200, limit: 30 }, 'an idle loop: no pressure')
  // Busy 90 ms of every 100: utilisation near 1 and long delays, as a saturated server shows.
  const blocker = setInterval(() => { const end = Date.now() + 90; while (Date.now() < end); }, 100)
  const started = Date.now()
  let shedAfter = -1
  while (Date.now() - started < 15_000) {
    const { status, limit } = await limitNow(app, 'batch')
    if (status === 429 || limit < 30) { shedAfter = Date.now() - started; break }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const critical = await limitNow(app, 'critical')
  clearInterval(blocker)
  t.ok(shedAfter >= 0, 'the low class was shed while the loop was blocked')
  t.equal(critical.status, 200, 'the top class was still admitted')
  t.ok(critical.limit >= 50, `the top class kept at least minFactor of the limit (${critical.limit})`)
  const stopped = Date.now()
  let recoveredAfter = -1
  while (Date.now() - stopped < 15_000) {
    if ((await limitNow(app, 'batch')).limit === 30) { recoveredAfter = Date.now() - stopped; break }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(recoveredAfter >= 0, 'the low class got its whole share back after the load stopped')
  t.comment(`low class shed ${shedAfter} ms after the blocking started; recovered ${recoveredAfter} ms after it stopped`)
})

t.test('validation', async (t) => {
  const base = { uid: 'a', rate: '10/min' }
  for (const adaptive of ['yes', { signal: 'cpu' }, { minFactor: 2 }, { minFactor: '0.5' }, { utilization: [0.9, 0.5] }, { delayMs: [10] }, { signal: () => 0, delayMs: [1, 2] }, { speed: 1 }]) {
    t.throws(() => createThrottle({ ...base, adaptive } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, JSON.stringify(adaptive))
  }
  t.throws(() => createThrottle({ ...base, strategy: new TokenBucket(), adaptive: true }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS', message: /adaptive works with/ })
  t.doesNotThrow(() => createThrottle({ ...base, adaptive: { utilization: [0.5, 0.9], delayMs: [20, 200], minFactor: 0 } }))
  t.doesNotThrow(() => createThrottle({ ...base, strategy: new TokenBucket(), adaptive: false }), 'false: off, any strategy')
})
