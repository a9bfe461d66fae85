/**
 * Every exit of a request with several limits gives back exactly what it charged: a rejection,
 * an `onError` answer, an error policy that raises, a handler that throws, and a client that
 * leaves while its request waits in a queue. And the request waits for the longest turn among
 * its limits, not for the turn of the limit that happens to report.
 */
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import {
  BackendError, FixedWindow, InMemoryBackend, LeakyBucketWithQueue, ManualClock, createThrottle, reserveAll, traffik,
  type Decision, type ErrorHandler, type ThrottleOptions
} from '../../lib/index.js'
import type { EvaluateMode, EvaluateOp } from '../../lib/backend.js'
import { ALIGNED_START } from '../helpers/build-app.js'
import { roomInWindow } from '../helpers/window-room.js'

/** A backend whose every decision fails, as a store that is down does. */
class DownBackend extends InMemoryBackend {
  calls = 0
  override evaluate (_ops: readonly EvaluateOp[], _mode: EvaluateMode): Decision[] {
    this.calls++
    return Promise.reject(new BackendError('down.evaluate', 'connection refused')) as unknown as Decision[]
  }
}

const client = { ip: '10.0.0.1' }

async function appWith (t: Test, limits: ThrottleOptions[], backend: InMemoryBackend, setup?: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify()
  setup?.(app)
  await app.register(traffik, { backend })
  app.get('/x', { config: { rateLimit: limits } }, async () => ({ ok: true }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

for (const onError of ['raise', 'throttle', 'handler throws', 'handler answers a rejection'] as const) {
  t.test(`a limit failing with onError ${onError} leaves the limits charged before it uncharged`, async (t) => {
    const clock = new ManualClock(ALIGNED_START)
    const memory = new InMemoryBackend({ clock })
    const down = new DownBackend({ clock })
    const policy: ThrottleOptions['onError'] = onError === 'raise'
      ? 'raise'
      : onError === 'throttle'
        ? 'throttle'
        : onError === 'handler throws'
          ? (() => { throw new Error('handler gave up') }) as ErrorHandler
          : (() => ({ allowed: false, limit: 1, remaining: 0, resetMs: 1000, retryAfterMs: 1000 })) as ErrorHandler
    const app = await appWith(t, [
      { uid: 'a', rate: '3/min', identifier: () => 'k' },
      { uid: 'b', rate: '3/min', identifier: () => 'k', backend: down, onError: policy }
    ], memory)
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await app.inject('/x')).statusCode)
    const expected = onError === 'raise' ? 503 : onError === 'handler throws' ? 500 : 429
    t.same(statuses, Array(5).fill(expected), 'every request is answered by the failing limit')
    t.ok(down.calls >= 5, 'the failing backend was asked each time')
    const a = await app.throttle.get('a')!.stat(client)
    t.equal(a.remaining, 3, "limit a holds none of the failed requests' charges")
  })
}

t.test('reserveAll with a limit whose backend fails and raises charges nothing', async (t) => {
  const clock = new ManualClock(ALIGNED_START)
  const memory = new InMemoryBackend({ clock })
  const down = new DownBackend({ clock })
  const a = createThrottle({ uid: 'a', rate: '3/min', backend: memory, identifier: () => 'k' })
  const b = createThrottle({ uid: 'b', rate: '3/min', backend: down, identifier: () => 'k', onError: 'raise' })
  for (let i = 0; i < 4; i++) await t.rejects(reserveAll(client, [a, b]), /connection refused/)
  t.equal((await a.stat(client)).remaining, 3, 'a gave back every charge')
})

t.test('a failing limit answered by onError allow keeps the charges of the request it admits', async (t) => {
  const clock = new ManualClock(ALIGNED_START)
  const memory = new InMemoryBackend({ clock })
  const down = new DownBackend({ clock })
  const app = await appWith(t, [
    { uid: 'a', rate: '3/min', identifier: () => 'k' },
    { uid: 'b', rate: '3/min', identifier: () => 'k', backend: down, onError: 'allow' }
  ], memory)
  t.same([(await app.inject('/x')).statusCode, (await app.inject('/x')).statusCode], [200, 200])
  t.equal((await app.throttle.get('a')!.stat(client)).remaining, 1, 'admitted requests stay charged on a')
})

/** A real server, so requests have sockets that can close while they wait. */
async function listening (t: Test, limits: ThrottleOptions[]): Promise<{ app: FastifyInstance, port: number, entered: number[] }> {
  const entered: number[] = []
  const app = Fastify()
  await app.register(traffik)
  app.get('/q', { config: { rateLimit: limits } }, async () => {
    entered.push(performance.now())
    return { ok: true }
  })
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port, entered }
}

function get (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/q', agent: false }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode!) })
    })
    req.on('error', reject)
    req.end()
  })
}

const queued = (rate = '5/s'): ThrottleOptions[] => [
  { uid: 'queue', rate, strategy: new LeakyBucketWithQueue({ maxDelayMs: 5000 }), identifier: () => 'k' },
  { uid: 'hourly', rate: '3/h', strategy: new FixedWindow(), identifier: () => 'k' }
]

t.test('a queue inside a multi-limit route still queues: requests reach the handler one turn apart', async (t) => {
  const { port, entered } = await listening(t, queued())
  const sent = performance.now()
  const statuses = await Promise.all([get(port), get(port), get(port)])
  t.same(statuses, [200, 200, 200])
  entered.sort((x, y) => x - y)
  // The first was decided after `sent`, and each later turn comes 200 ms after it. Timers never
  // fire early (1 ms allowed for their rounding): lower bounds, not speed claims.
  t.ok(entered[1]! - sent >= 199, `second waited its turn (${(entered[1]! - sent).toFixed(1)} ms after sending)`)
  t.ok(entered[2]! - sent >= 399, `third waited its turn (${(entered[2]! - sent).toFixed(1)} ms after sending)`)
})

t.test('the outcome reports the longest turn among the admitted limits', async (t) => {
  const clock = new ManualClock(ALIGNED_START)
  const delays: number[] = []
  const app = await appWith(t, queued(), new InMemoryBackend({ clock }), (app) => {
    app.addHook('onSend', async (request) => { delays.push(request.rateLimit!.delayMs) })
  })
  // inject has no socket to close; the hook still holds each request for its turn.
  await Promise.all([app.inject('/x'), app.inject('/x'), app.inject('/x')])
  t.same(delays.sort((x, y) => x - y), [0, 200, 400])
})

t.test('a client that leaves the queue gives back every charge of its request', async (t) => {
  // One turn every 500 ms: the clients hang up 80 ms after sending, long before their turns, even
  // when this busy process runs its timers late.
  await roomInWindow(3_600_000, 5000) // the hourly limit's counts below stay in one window
  const { app, port, entered } = await listening(t, queued('2/s'))
  t.equal(await get(port), 200, 'first request goes at once')
  // Two more wait (500 ms and 1000 ms); both clients hang up while held.
  const sockets: Array<Promise<void>> = []
  for (let i = 0; i < 2; i++) {
    sockets.push(new Promise((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/q', agent: false })
      req.on('error', () => { resolve() })
      req.on('close', () => { resolve() })
      req.end()
      setTimeout(() => { req.destroy() }, 80)
    }))
  }
  await Promise.all(sockets)
  // Their places were given back whole: a newcomer waits at most one turn behind the first.
  const probe = await app.throttle.get('queue')!.check(client)
  t.ok(probe.allowed && (probe.delayMs ?? 0) <= 500, `a newcomer waits ${probe.delayMs ?? 0} ms, not behind the departed`)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal(entered.length, 1, 'the clients that left never reached the handler')
  const hourly = await app.throttle.get('hourly')!.stat(client)
  t.equal(hourly.remaining, 2, 'the hourly limit holds only the request that ran')
  t.equal(await get(port), 200, 'the queue is free again')
  t.equal((await app.throttle.get('hourly')!.stat(client)).remaining, 1)
})
