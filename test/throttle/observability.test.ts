import t from 'tap'
import { EXEMPTED, InMemoryBackend, ManualClock, bypassIf, traffik, type DecisionEvent, type Decision } from '../../lib/index.js'
import { type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'
import Fastify from 'fastify'
import { buildApp } from '../helpers/build-app.js'

t.test('onDecision counts allowed, throttled and error decisions, with uid, key and request', async (t) => {
  const events: DecisionEvent[] = []
  const { app } = await buildApp(t, { onDecision: (event) => events.push(event) }, (app) => {
    app.get('/a', { config: { rateLimit: { uid: 'a', rate: '2/min' } } }, async () => 'ok')
    app.get('/exempt', { config: { rateLimit: { rate: '1/min', identifier: () => EXEMPTED } } }, async () => 'ok')
  })
  for (let i = 0; i < 3; i++) await app.inject('/a')
  for (let i = 0; i < 3; i++) await app.inject('/exempt')
  t.same(events.map((e) => e.type), ['allowed', 'allowed', 'throttled'], 'exempt requests are not decisions')
  t.same(events.map((e) => [e.uid, e.key]), [['a', 'a:{127.0.0.1}'], ['a', 'a:{127.0.0.1}'], ['a', 'a:{127.0.0.1}']])
  t.equal(events[2]!.decision?.allowed, false)
  t.equal(events[0]!.request.url, '/a', 'the request comes with the event')

  await app.throttle.get('a')!.hit({ ip: '9.9.9.9' })
  t.equal(events.length, 4, 'hit() outside a route reports too')
  t.equal(events[3]!.key, 'a:{9.9.9.9}')
  await app.throttle.get('a')!.check({ ip: '9.9.9.9' })
  t.equal(events.length, 4, 'check() is not a decision')
})

t.test('a Prometheus-style counter: errors are counted before the onError answer', async (t) => {
  class DownBackend extends InMemoryBackend {
    override evaluate (_ops: readonly EvaluateOp[], _mode: EvaluateMode): Decision[] {
      throw new Error('down')
    }
  }
  const counts = new Map<string, number>()
  const app = Fastify()
  await app.register(traffik, {
    backend: new DownBackend(),
    onDecision: ({ type, uid }) => {
      const label = `traffik_decisions_total{uid="${uid}",outcome="${type}"}`
      counts.set(label, (counts.get(label) ?? 0) + 1)
    }
  })
  app.get('/', { config: { rateLimit: { uid: 'api', rate: '5/min', onError: 'allow' } } }, async () => 'ok')
  app.get('/closed', { config: { rateLimit: { uid: 'closed', rate: '5/min' } } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  await app.inject('/')
  await app.inject('/closed')
  t.same(Object.fromEntries(counts), {
    'traffik_decisions_total{uid="api",outcome="error"}': 1,
    'traffik_decisions_total{uid="closed",outcome="error"}': 1,
    'traffik_decisions_total{uid="closed",outcome="throttled"}': 1
  }, 'fail-open answers carry no decision (no limit was applied); fail-closed ones count as throttled')
})

t.test('an onDecision that throws is logged and never breaks a request', async (t) => {
  const { app } = await buildApp(t, { onDecision: () => { throw new Error('metrics down') } }, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min' } } }, async () => 'ok')
  })
  t.equal((await app.inject('/')).statusCode, 200)
  t.equal((await app.inject('/')).statusCode, 429)
})

t.test('request.rateLimit exposes the decisions of the route limits to the handler', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/quota', { config: { rateLimit: [{ uid: 'burst', rate: '5/s' }, { uid: 'monthly', rate: '3/day' }] } }, async (request) => {
      const state = request.rateLimit!
      return {
        remaining: state.decision.remaining,
        reportedBy: state.throttle.uid,
        limits: state.throttles.map((throttle, i) => ({ uid: throttle.uid, remaining: state.decisions[i]!.remaining, limit: state.decisions[i]!.limit }))
      }
    })
    app.get('/single', { config: { rateLimit: { uid: 'single', rate: '10/min' } } }, async (request) => ({
      remaining: request.rateLimit?.decision.remaining, uids: request.rateLimit?.throttles.map((x) => x.uid)
    }))
    app.get('/none', { config: { rateLimit: false } }, async (request) => ({ rateLimit: request.rateLimit }))
  })
  t.same((await app.inject('/quota')).json(), {
    remaining: 2,
    reportedBy: 'monthly',
    limits: [{ uid: 'burst', remaining: 4, limit: 5 }, { uid: 'monthly', remaining: 2, limit: 3 }]
  })
  clock.advance(1000)
  t.same((await app.inject('/single')).json(), { remaining: 9, uids: ['single'] })
  t.same((await app.inject('/none')).json(), { rateLimit: null }, 'null when no limit applied')
})

t.test('the onDecision hook is attached to throttles created later and to throttle.hook', async (t) => {
  const events: string[] = []
  const clock = new ManualClock()
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend({ clock }), onDecision: (e) => events.push(`${e.uid}:${e.type}`) })
  const scanner = app.throttle.create({ uid: 'scanner', rate: '1/min', rules: [bypassIf({ path: '/ok' })] })
  app.get('/ok', { preHandler: scanner.hook }, async () => 'ok')
  app.get('/x', { preHandler: scanner.hook }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  await app.inject('/ok')
  await app.inject('/x')
  await app.inject('/x')
  t.same(events, ['scanner:allowed', 'scanner:throttled'])
})
