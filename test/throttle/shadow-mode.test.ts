import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { BackendError, InMemoryBackend, ManualClock, traffik, type Decision, type DecisionEvent, type TraffikPluginOptions } from '../../lib/index.js'
import { type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'
import { ALIGNED_START, buildApp } from '../helpers/build-app.js'

const ok = async (): Promise<string> => 'ok'

interface Logged { level: number, msg: string, uid?: string, wouldHaveThrottled?: number }

/** An app whose log lines are collected, on a ManualClock; events of `onDecision` collected too. */
async function loggedApp (t: Test, options: TraffikPluginOptions, routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, logs: Logged[], events: DecisionEvent[], backend: InMemoryBackend }> {
  const logs: Logged[] = []
  const events: DecisionEvent[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Logged)
      callback()
    }
  })
  const backend = new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) })
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(traffik, { backend, onDecision: (event) => { events.push(event) }, ...options })
  routes(app)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, logs, events, backend }
}

const shadowLines = (logs: Logged[]): Logged[] => logs.filter((l) => l.msg.includes('shadow throttle would have throttled'))

t.test('a shadow limit of 5/min sees 20 requests: 20 × 200, 15 would-have-throttled events, its counter charged', async (t) => {
  const { app, logs, events } = await loggedApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'new-limit', rate: '5/min', shadow: true } } }, ok)
  })
  const statuses: number[] = []
  for (let i = 0; i < 20; i++) {
    const response = await app.inject('/')
    statuses.push(response.statusCode)
    t.notOk(response.headers['x-ratelimit-limit'], 'a shadow limit writes no headers')
  }
  t.same(statuses, Array(20).fill(200))
  t.equal(events.filter((e) => e.type === 'shadow-throttled').length, 15)
  t.equal(events.filter((e) => e.type === 'allowed').length, 20, 'every request is answered allowed')
  t.notOk(events.some((e) => e.type === 'throttled'))
  const shadowEvent = events.find((e) => e.type === 'shadow-throttled')!
  t.equal(shadowEvent.uid, 'new-limit')
  t.equal(shadowEvent.decision!.allowed, false, 'the event carries the decision the limit made')
  const throttle = app.throttle.get('new-limit')!
  t.equal(throttle.shadow, true)
  const probe = { ip: '127.0.0.1' }
  const state = await throttle.stat(probe)
  t.equal(state.remaining, 0, 'the counter was charged as usual: stat reports the real state')
  t.equal(state.allowed, true, 'stat asks for nothing (cost 0)')
  t.equal((await throttle.check(probe)).allowed, false, 'check reports the real answer')
  const lines = shadowLines(logs)
  t.equal(lines.length, 1, 'one log line, not one per request')
  t.equal(lines[0]!.level, 30, 'at info level')
  t.equal(lines[0]!.uid, 'new-limit')
})

t.test('the shadow log sums up once a minute', async (t) => {
  const { ShadowLog, SHADOW_LOG_INTERVAL_MS } = await import('../../lib/throttle/shadow-log.js')
  const clock = new ManualClock(0)
  const lines: Array<{ obj: Record<string, unknown>, msg: string }> = []
  const request = { log: { warn () {}, info (obj: unknown, msg?: string) { lines.push({ obj: obj as Record<string, unknown>, msg: msg! }) } } }
  const log = new ShadowLog('u', clock)
  log.note(request, 'k')
  for (let i = 0; i < 9; i++) log.note(request, 'k')
  t.equal(lines.length, 1)
  clock.advance(SHADOW_LOG_INTERVAL_MS)
  log.note(request, 'k')
  t.equal(lines.length, 2)
  t.same(lines[1]!.obj, { uid: 'u', key: 'k', wouldHaveThrottled: 10, sinceMs: SHADOW_LOG_INTERVAL_MS })
  log.note({}, 'k') // no logger: counted, nothing written
  clock.advance(SHADOW_LOG_INTERVAL_MS)
  const warned: unknown[] = []
  log.note({ log: { warn (obj: unknown) { warned.push(obj) } } }, 'k')
  t.equal((warned[0] as { wouldHaveThrottled: number }).wouldHaveThrottled, 2, 'a logger without info gets warn')
})

t.test('shadow: { headers: true } writes the headers of an admitted request (remaining 0, no retry-after)', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min', shadow: { headers: true } } } }, ok)
  })
  t.equal((await app.inject('/')).headers['x-ratelimit-remaining'], '0')
  const over = await app.inject('/')
  t.equal(over.statusCode, 200)
  t.equal(over.headers['x-ratelimit-limit'], '1')
  t.equal(over.headers['x-ratelimit-remaining'], '0')
  t.notOk(over.headers['retry-after'])
})

t.test('shadow from defaults and global, and a route that overrides it', async (t) => {
  const { app } = await buildApp(t, { defaults: { shadow: true }, global: { rate: '1/min' } }, (app) => {
    app.get('/', ok)
    app.get('/enforced', { config: { rateLimit: { rate: '1/min', shadow: false } } }, ok)
  })
  t.same([(await app.inject('/')).statusCode, (await app.inject('/')).statusCode], [200, 200])
  t.same([(await app.inject('/enforced')).statusCode, (await app.inject('/enforced')).statusCode], [200, 429])
})

t.test('run-time switches: per throttle and for the whole registry', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/a', { config: { rateLimit: { uid: 'a', rate: '1/min' } } }, ok)
    app.get('/b', { config: { rateLimit: { uid: 'b', rate: '1/min', shadow: true } } }, ok)
  })
  const a = app.throttle.get('a')!
  t.equal((await app.inject('/a')).statusCode, 200)
  t.equal((await app.inject('/a')).statusCode, 429)
  a.setShadow(true)
  t.equal((await app.inject('/a')).statusCode, 200, 'in shadow the next request passes')
  a.setShadow(false)
  t.equal((await app.inject('/a')).statusCode, 429)

  t.equal(app.throttle.shadow, false)
  app.throttle.setShadow(true)
  t.equal(app.throttle.shadow, true)
  t.equal(a.shadow, true, 'the registry switch reaches every throttle')
  t.equal((await app.inject('/a')).statusCode, 200)
  const later = app.throttle.create({ uid: 'later', rate: '0/min' })
  t.equal(later.shadow, true, 'and throttles created afterwards')
  t.equal((await later.hit({ ip: '1.2.3.4' })).allowed, true, 'hit on a shadow throttle admits')
  app.throttle.setShadow(false)
  t.equal(a.shadow, false, 'switching it off returns each throttle to its own setting')
  t.equal(app.throttle.get('b')!.shadow, true)
  t.equal((await app.inject('/a')).statusCode, 429)
  t.equal((await later.hit({ ip: '1.2.3.4' })).allowed, false)
  t.throws(() => { app.throttle.setShadow('yes' as never) }, { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})

t.test('bad shadow options fail when the route is declared, with a coded error (more in bad-config)', async (t) => {
  for (const shadow of ['yes', null, 1, [], { header: true }, { headers: 'yes' }]) {
    const app = Fastify()
    await app.register(traffik)
    t.throws(() => { app.get('/', { config: { rateLimit: { rate: '1/min', shadow: shadow as never } } }, ok) }, { code: 'TRAFFIK_ERR_INVALID_OPTION' }, String(JSON.stringify(shadow)))
    await app.close()
  }
})

t.test('a shadow limit never fails a request: throwing identifiers, raising error policies', async (t) => {
  class DownBackend extends InMemoryBackend {
    override evaluate (_ops: readonly EvaluateOp[], _mode: EvaluateMode): Decision[] {
      return Promise.reject(new BackendError('down.evaluate', 'connection lost')) as unknown as Decision[]
    }
  }
  const down = new DownBackend()
  const { app, logs, events } = await loggedApp(t, { backends: [down] }, (app) => {
    app.get('/id', { config: { rateLimit: { rate: '1/min', shadow: true, identifier: () => { throw new Error('no user') } } } }, ok)
    app.get('/raise', { config: { rateLimit: [{ uid: 'e', rate: '5/min' }, { uid: 's', rate: '1/min', shadow: true, backend: down, onError: 'raise' }] } }, ok)
    app.get('/closed', { config: { rateLimit: { uid: 'c', rate: '5/min', shadow: true, backend: down } } }, ok)
    app.get('/enforced-id', { config: { rateLimit: { rate: '1/min', identifier: () => { throw new Error('no user') } } } }, ok)
  })
  t.equal((await app.inject('/id')).statusCode, 200)
  t.ok(logs.some((l) => l.level === 40 && l.msg.includes('shadow throttle could not decide')), 'logged at warn')
  const raised = await app.inject('/raise')
  t.equal(raised.statusCode, 200, "onError 'raise' on a shadow limit does not reach the request")
  t.equal(raised.headers['x-ratelimit-remaining'], '4', 'the enforcing limit answered and kept its charge')
  t.ok(events.some((e) => e.type === 'error' && e.uid === 's'), 'the failure is an error event')
  t.equal((await app.inject('/closed')).statusCode, 200, "'throttle' (fail closed) on a shadow limit admits")
  t.ok(events.some((e) => e.type === 'shadow-throttled' && e.uid === 'c'), '... and reports it would have throttled')
  t.equal((await app.inject('/enforced-id')).statusCode, 500, 'an enforcing limit still fails the request')
})

t.test('reserve and a queued shadow limit: charges held and given back, no wait', async (t) => {
  const { app } = await buildApp(t, {}, () => {})
  const throttle = app.throttle.create({ uid: 'r', rate: '2/min', shadow: true })
  const request = { ip: '1.1.1.1' }
  const first = await throttle.reserve(request)
  t.equal(first.state, 'reserved')
  t.equal((await throttle.stat(request)).remaining, 1)
  t.equal(await first.refund(), true, 'the shadow charge is given back')
  t.equal((await throttle.stat(request)).remaining, 2)
  await throttle.hit(request)
  await throttle.hit(request)
  const over = await throttle.reserve(request)
  t.equal(over.decision.allowed, true, 'never rejects')
  t.equal(over.outcome!.shadowThrottled.length, 1)
  t.equal(await over.refund(), false, 'a shadow rejection charged nothing')
})

/**
 * The model: a route's limits decided on a fixed instant (FixedWindow counters). Enforcing limits
 * are all-or-nothing; if they admit, the shadow limits are all-or-nothing among themselves; a
 * shadow rejection gives back only shadow charges. The request is rejected iff an enforcing limit rejects.
 */
interface ModelLimit { limit: number, shadow: boolean, backend: 0 | 1, cost: number }

function modelRun (limits: readonly ModelLimit[], requests: number): { statuses: number[], counts: number[], shadowEvents: number[] } {
  const counts = limits.map(() => 0)
  const statuses: number[] = []
  const shadowEvents: number[] = []
  // limit 0 blocks everything, whatever the cost.
  const fits = (i: number): boolean => limits[i]!.limit > 0 && counts[i]! + limits[i]!.cost <= limits[i]!.limit
  const charge = (indexes: number[]): void => { for (const i of indexes) counts[i]! += limits[i]!.cost }
  for (let r = 0; r < requests; r++) {
    const enforcing = limits.map((_, i) => i).filter((i) => !limits[i]!.shadow)
    const shadows = limits.map((_, i) => i).filter((i) => limits[i]!.shadow)
    if (!enforcing.every(fits)) {
      statuses.push(429)
      shadowEvents.push(0)
      continue
    }
    charge(enforcing)
    statuses.push(200)
    const rejecting = shadows.filter((i) => !fits(i))
    if (rejecting.length === 0) {
      charge(shadows)
      shadowEvents.push(0)
    } else {
      shadowEvents.push(-1) // at least one; which ones depends on the backend order, checked below
    }
  }
  return { statuses, counts, shadowEvents }
}

t.test('property: shadow and enforcing limits on one route follow the model (one or two backends)', async (t) => {
  const limitArb = fc.record({
    limit: fc.integer({ min: 0, max: 6 }),
    shadow: fc.boolean(),
    backend: fc.constantFrom<0 | 1>(0, 1),
    cost: fc.integer({ min: 0, max: 2 })
  })
  await fc.assert(fc.asyncProperty(fc.array(limitArb, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 12 }), async (limits, requests) => {
    const clock = new ManualClock(ALIGNED_START)
    const backends = [new InMemoryBackend({ clock }), new InMemoryBackend({ clock })]
    const app = Fastify()
    const shadowEvents: number[] = []
    let current = 0
    await app.register(traffik, { backend: backends[0], backends: [backends[1]!], onDecision: (e) => { if (e.type === 'shadow-throttled') current++ } })
    app.get('/', {
      config: {
        rateLimit: limits.map((l, i) => ({ uid: `l${i}`, rate: { limit: l.limit, windowMs: 60_000 }, shadow: l.shadow, backend: backends[l.backend], cost: l.cost }))
      }
    }, ok)
    await app.ready()
    try {
      const statuses: number[] = []
      for (let r = 0; r < requests; r++) {
        current = 0
        statuses.push((await app.inject('/')).statusCode)
        shadowEvents.push(current)
      }
      const model = modelRun(limits, requests)
      if (JSON.stringify(statuses) !== JSON.stringify(model.statuses)) return false
      for (let i = 0; i < limits.length; i++) {
        const used = limits[i]!.limit - (await app.throttle.get(`l${i}`)!.stat({ ip: '127.0.0.1' })).remaining
        if (used !== model.counts[i]) return false
      }
      return model.shadowEvents.every((expected, r) => expected === -1 ? shadowEvents[r]! >= 1 : shadowEvents[r] === expected)
    } finally {
      await app.close()
    }
  }), { numRuns: 60 })
  t.pass('60 random routes matched the model')
})
