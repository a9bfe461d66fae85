import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { BackendError, CircuitBreaker, InMemoryBackend, ManualClock, failover, retry, traffik, type BreakerStateChange, type DecisionEvent, type Decision } from '../../lib/index.js'
import { type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'

const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })

class FlakyError extends Error {}

/** A primary whose calls can be made to hang and then fail; counts every call. */
class FlakyBackend extends InMemoryBackend {
  calls = 0
  failing = true
  hangMs = 0
  error: () => Error = () => new BackendError('flaky.evaluate', 'connection lost')
  // The backend contract allows an async answer; InMemoryBackend's own signature is the sync one.
  override evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Decision[] {
    this.calls++
    if (!this.failing) return super.evaluate(ops, mode)
    const error = this.error()
    if (this.hangMs === 0) return Promise.reject(error) as unknown as Decision[]
    return new Promise((_resolve, reject) => { setTimeout(() => { reject(error) }, this.hangMs) }) as unknown as Decision[]
  }
}

interface LoggedApp { app: FastifyInstance, logs: Array<{ level: number, msg: string, breaker?: BreakerStateChange }> }

async function appWithLogs (t: Test, register: (app: FastifyInstance) => Promise<void>): Promise<LoggedApp> {
  const logs: LoggedApp['logs'] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line))
      callback()
    }
  })
  const app = Fastify({ logger: { level: 'info', stream } })
  await register(app)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, logs }
}

t.test('failover + breaker: once open, requests skip the hanging primary entirely', async (t) => {
  const primary = new FlakyBackend()
  primary.hangMs = 200
  const fallback = new InMemoryBackend()
  const clock = new ManualClock()
  const changes: BreakerStateChange[] = []
  const breaker = new CircuitBreaker({ failureThreshold: 2, recoveryTimeMs: 10_000, halfOpenProbes: 1, clock, onStateChange: (c) => changes.push(c) })
  const { app, logs } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary, backends: [fallback] })
    app.get('/', { config: { rateLimit: { rate: '100/min', onError: failover({ backend: fallback, breaker }) } } }, ok)
  })

  const timed = async (): Promise<{ status: number, ms: number, remaining: unknown }> => {
    const started = performance.now()
    const res = await app.inject('/')
    return { status: res.statusCode, ms: performance.now() - started, remaining: res.headers['x-ratelimit-remaining'] }
  }
  const first = await timed()
  const second = await timed()
  t.same([first.status, second.status], [200, 200], 'the fallback answered while the primary failed')
  t.ok(first.ms >= 190 && second.ms >= 190, 'closed: both waited on the primary')
  t.equal(primary.calls, 2)
  t.equal(breaker.state, 'open')
  t.same(changes.map((c) => `${c.from}->${c.to}:${c.reason}`), ['closed->open:failures'])

  // Open: answered by the fallback without the primary (counted, not timed: a timing bound would
  // fail on a loaded machine whatever the breaker does).
  for (let i = 0; i < 5; i++) t.equal((await timed()).status, 200)
  t.equal(primary.calls, 2, 'open: the primary was not called at all, so no answer waited on its 200 ms')
  t.equal((await timed()).remaining, '92', 'the fallback counts: 8 requests so far')
  const warning = logs.find((l) => l.breaker?.to === 'open')
  t.ok(warning, 'the state change is logged through the request logger')
  t.equal(warning?.level, 40, 'opening is a warning')
  t.match(warning?.msg, /circuit breaker closed -> open/)

  // Recovery: the primary is healthy again; after the recovery time one probe goes through.
  primary.failing = false
  clock.advance(9_999)
  await timed()
  t.equal(primary.calls, 2, 'still open 1 ms before the recovery time')
  clock.advance(1)
  const probe = await timed()
  t.equal(probe.status, 200)
  t.equal(primary.calls, 3, 'half-open: the probe went to the primary')
  t.equal(breaker.state, 'closed', 'a successful probe closes the breaker')
  t.equal(probe.remaining, '99', 'the primary counts from its own state')
  await timed()
  t.equal(primary.calls, 4, 'closed: every request goes to the primary again')
  t.same(changes.map((c) => `${c.from}->${c.to}:${c.reason}`), ['closed->open:failures', 'open->half-open:recovery-time', 'half-open->closed:probes-succeeded'])
  t.ok(logs.some((l) => l.breaker?.to === 'closed' && l.level === 30), 'closing is logged at info')
})

t.test('half-open: a failed probe opens the breaker again; other requests meanwhile use the fallback', async (t) => {
  const primary = new FlakyBackend()
  const fallback = new InMemoryBackend()
  const clock = new ManualClock()
  const breaker = new CircuitBreaker({ failureThreshold: 1, recoveryTimeMs: 5_000, halfOpenProbes: 2, clock })
  const states: string[] = []
  breaker.on('stateChange', (change) => states.push(change.to))
  const { app } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary })
    app.get('/', { config: { rateLimit: { rate: '100/min', onError: failover({ backend: fallback, breaker }) } } }, ok)
  })
  t.equal((await app.inject('/')).statusCode, 200)
  t.equal(breaker.state, 'open')
  clock.advance(5_000)
  t.equal(breaker.state, 'half-open')
  primary.hangMs = 200
  // Two probes are admitted; a third concurrent request goes to the fallback without waiting.
  const results = await Promise.all([app.inject('/'), app.inject('/'), app.inject('/')])
  t.same(results.map((r) => r.statusCode), [200, 200, 200])
  t.equal(primary.calls, 3, 'one call while closed, then exactly two probes')
  t.equal(breaker.state, 'open', 'a failed probe re-opens the breaker')
  t.same(states, ['open', 'half-open', 'open'])
  clock.advance(4_999)
  await app.inject('/')
  t.equal(primary.calls, 3, 'open again for a whole recovery time')

  primary.failing = false
  clock.advance(1)
  await Promise.all([app.inject('/'), app.inject('/')])
  t.equal(breaker.state, 'closed', 'two successful probes close it (halfOpenProbes: 2)')
  t.equal(primary.calls, 5)
})

t.test('retry: retries only the errors it is told to, with fixed or exponential backoff', async (t) => {
  const primary = new FlakyBackend()
  let failuresLeft = 0
  primary.evaluate = function (this: FlakyBackend, ops, mode) {
    this.calls++
    if (failuresLeft > 0) {
      failuresLeft--
      return Promise.reject(this.error()) as unknown as Decision[]
    }
    return InMemoryBackend.prototype.evaluate.call(this, ops, mode)
  }
  const { app } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary })
    app.get('/named', { config: { rateLimit: { rate: '100/min', onError: retry({ retries: 2, delayMs: 1, retryOn: [FlakyError] }) } } }, ok)
    app.get('/exp', { config: { rateLimit: { rate: '100/min', onError: [retry({ retries: 3, delayMs: 1, backoff: 'exponential', jitter: true, retryOn: (e) => e.message === 'transient' }), 'raise'] } } }, ok)
  })
  primary.error = () => new FlakyError('transient')
  failuresLeft = 2
  const recovered = await app.inject('/named')
  t.equal(recovered.statusCode, 200, 'two failures, then the third attempt succeeded')
  t.equal(primary.calls, 3)
  t.equal(recovered.headers['x-ratelimit-remaining'], '99', 'charged once')

  primary.calls = 0
  failuresLeft = 5
  t.equal((await app.inject('/named')).statusCode, 429, 'out of retries: the default policy (throttle) answers')
  t.equal(primary.calls, 3, 'first attempt + 2 retries')

  primary.calls = 0
  failuresLeft = 1
  primary.error = () => new Error('not named')
  t.equal((await app.inject('/named')).statusCode, 429, 'an error retryOn does not name is not retried')
  t.equal(primary.calls, 1)

  primary.calls = 0
  failuresLeft = 3
  primary.error = () => new FlakyError('transient')
  t.equal((await app.inject('/exp')).statusCode, 200, 'predicate form, exponential backoff with jitter')
  t.equal(primary.calls, 4)
  failuresLeft = 10
  const raised = await app.inject('/exp')
  t.equal(raised.statusCode, 500, "'raise' after the steps surfaces the error")
})

t.test("composition: retry, then failover, then 'allow' when the fallback fails too", async (t) => {
  const primary = new FlakyBackend()
  primary.error = () => new FlakyError('down')
  const fallback = new FlakyBackend()
  fallback.failing = false
  const events: DecisionEvent[] = []
  const { app } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary, onDecision: (e) => events.push(e) })
    app.get('/', {
      config: {
        rateLimit: {
          rate: '2/min',
          onError: [retry({ retries: 1, delayMs: 1, backoff: 'fixed', retryOn: [FlakyError] }), failover({ backend: fallback }), 'allow']
        }
      }
    }, ok)
  })
  const first = await app.inject('/')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['x-ratelimit-remaining'], '1', 'decided by the fallback, with headers')
  t.equal(primary.calls, 2, 'retried once before failing over')
  t.equal(fallback.calls, 1)
  await app.inject('/')
  t.equal((await app.inject('/')).statusCode, 429, 'the fallback enforces the limit')
  t.equal(events.filter((e) => e.type === 'error').length, 6, 'every failed primary call is reported')

  fallback.failing = true
  const allowed = await app.inject('/')
  t.equal(allowed.statusCode, 200, "both backends down: 'allow'")
  t.notOk(allowed.headers['x-ratelimit-limit'], 'fail-open answers carry no headers')
})

t.test('failover on several limits of one route keeps them all-or-nothing', async (t) => {
  const primary = new FlakyBackend()
  const fallback = new InMemoryBackend()
  const breaker = new CircuitBreaker({ failureThreshold: 1, recoveryTimeMs: 60_000 })
  const { app } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary, defaults: { onError: failover({ backend: fallback, breaker }) } })
    app.get('/', { config: { rateLimit: [{ uid: 'burst', rate: '2/min' }, { uid: 'daily', rate: '3/day' }] } }, ok)
  })
  const statuses = []
  for (let i = 0; i < 4; i++) statuses.push((await app.inject('/')).statusCode)
  t.same(statuses, [200, 200, 429, 429])
  t.equal(primary.calls, 1, 'the shared breaker opened after the first failure')
  const daily = await fallback.evaluate([{ strategy: app.throttle.get('daily')!.strategy, key: 'daily:{127.0.0.1}', limit: 3, windowMs: 86_400_000, cost: 0 }], 'check')
  t.equal((daily as Decision[])[0]!.remaining, 1, 'the daily limit was charged only for the two allowed requests')
})

t.test('the plain handler form still works, and the breaker can be forced', async (t) => {
  const primary = new FlakyBackend()
  const fallback = new InMemoryBackend()
  const breaker = new CircuitBreaker({ failureThreshold: 3 })
  const handler = failover({ backend: fallback, breaker })
  const { app } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary })
    app.get('/', { config: { rateLimit: { rate: '5/min', onError: async (request, error, throttle, context) => await handler(request, error, throttle, context) } } }, ok)
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-ratelimit-remaining'], '4', 'the fallback decided after the primary failed')
  t.equal(breaker.failures, 1, 'the failure was counted')
  breaker.forceOpen()
  t.equal(breaker.state, 'open')
  breaker.forceClose()
  t.equal(breaker.state, 'closed')
  t.equal(breaker.failures, 0)
})

t.test('bad error-handling options fail at registration', async (t) => {
  const fallback = new InMemoryBackend()
  t.throws(() => retry({} as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /retryOn/ })
  t.throws(() => retry({ retryOn: [], retries: 1 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /retryOn/ })
  t.throws(() => retry({ retryOn: [Error], retries: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /retries/ })
  t.throws(() => retry({ retryOn: [Error], backoff: 'linear' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /backoff/ })
  t.throws(() => failover({ backend: 'memory' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /failover.backend/ })
  t.throws(() => failover({ backend: fallback, breaker: {} as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /breaker/ })
  t.throws(() => new CircuitBreaker({ failureThreshold: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /failureThreshold/ })
  t.throws(() => new CircuitBreaker({ halfOpenProbes: 1.5 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /halfOpenProbes/ })
  const app = Fastify()
  await app.register(traffik)
  t.teardown(async () => { await app.close() })
  const route = (onError: unknown) => () => app.get(`/r${Math.random()}`, { config: { rateLimit: { rate: '1/s', onError: onError as never } } }, ok)
  t.throws(route(['allow', failover({ backend: fallback })]), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /onError\[0\]/ }, 'a policy can only come last')
  t.throws(route([]), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /onError/ })
  t.throws(route([failover({ backend: fallback }), 'ignore']), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /onError\[1\]/ })
  t.doesNotThrow(route([retry({ retryOn: [Error] }), failover({ backend: fallback })]))
})

t.test('retry as a plain handler retries after the failed call, at most `retries` times', async (t) => {
  const primary = new FlakyBackend()
  let failuresLeft = 0
  primary.evaluate = function (this: FlakyBackend, ops, mode) {
    this.calls++
    if (failuresLeft > 0) {
      failuresLeft--
      return Promise.reject(new FlakyError('transient')) as unknown as Decision[]
    }
    return InMemoryBackend.prototype.evaluate.call(this, ops, mode)
  }
  const again = retry({ retries: 2, delayMs: 1, retryOn: [FlakyError] })
  const { app } = await appWithLogs(t, async (app) => {
    await app.register(traffik, { backend: primary })
    app.get('/', {
      config: {
        rateLimit: {
          rate: '5/min',
          onError: async (request, error, throttle, context) => {
            try {
              return await again(request, error, throttle, context)
            } catch {
              return 'allow'
            }
          }
        }
      }
    }, ok)
  })
  failuresLeft = 2
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-ratelimit-remaining'], '4', 'decided by the third call')
  t.equal(primary.calls, 3)
  primary.calls = 0
  failuresLeft = 10
  const gaveUp = await app.inject('/')
  t.equal(gaveUp.statusCode, 200)
  t.notOk(gaveUp.headers['x-ratelimit-limit'], 'the handler fell back to allow')
  t.equal(primary.calls, 3, 'the failed call and two retries')
})

t.test('a reservation decided by the fallback is refunded on the fallback while the breaker is open', async (t) => {
  const primary = new FlakyBackend()
  const fallback = new InMemoryBackend()
  const breaker = new CircuitBreaker({ failureThreshold: 1, recoveryTimeMs: 60_000 })
  breaker.forceOpen()
  const { createThrottle } = await import('../../lib/index.js')
  const throttle = createThrottle({ uid: 'q', rate: '5/min', backend: primary, onError: failover({ backend: fallback, breaker }) })
  const client = { ip: '10.0.0.7' }
  const reservation = await throttle.reserve(client, { cost: 3 })
  t.equal(reservation.decision.remaining, 2)
  t.equal(await reservation.refund(), true)
  t.equal((await throttle.stat(client)).remaining, 5, 'the fallback got its 3 units back')
  t.equal(primary.calls, 0, 'the open breaker kept every call off the primary, refunds included')
})
