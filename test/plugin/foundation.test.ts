import Fastify from 'fastify'
import t from 'tap'
import { EXEMPTED, InMemoryBackend, ManualClock, ThrottleBackend, traffik } from '../../lib/index.js'
import { buildApp } from '../helpers/build-app.js'

const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })

t.test("'2/s': 200, 200, 429, then allowed again after the window", async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '2/s' } } }, ok)
  })
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await app.inject('/')).statusCode)
  t.same(statuses, [200, 200, 429])
  clock.advance(1000)
  t.equal((await app.inject('/')).statusCode, 200, 'a new window restores the budget')
})

t.test('legacy headers: limit, remaining counting down, reset; retry-after only on 429', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '3/10s' } } }, ok)
  })
  clock.advance(2500) // 7.5 s before the window ends
  const seen = []
  for (let i = 0; i < 4; i++) {
    const res = await app.inject('/')
    seen.push([res.statusCode, res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], res.headers['x-ratelimit-reset'], res.headers['retry-after']])
  }
  t.same(seen, [
    [200, '3', '2', '8', undefined],
    [200, '3', '1', '8', undefined],
    [200, '3', '0', '8', undefined],
    [429, '3', '0', '8', '8']
  ])
})

t.test('the 429 is a coded error with a JSON body, seen by setErrorHandler', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.setErrorHandler((error, _request, reply) => {
      reply.code((error as { statusCode?: number }).statusCode ?? 500).send({ seenByHandler: true, code: (error as { code?: string }).code })
    })
    app.get('/', { config: { rateLimit: { rate: '1/min' } } }, ok)
  })
  await app.inject('/')
  const res = await app.inject('/')
  t.equal(res.statusCode, 429)
  t.same(res.json(), { seenByHandler: true, code: 'TRAFFIK_ERR_RATE_LIMITED' })
  t.equal(res.headers['retry-after'], '60', 'headers survive the error handler')
})

t.test('default error rendering: statusCode, code, error, message', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/min' } } }, ok)
  })
  await app.inject('/')
  const body = (await app.inject('/')).json()
  t.same(body, { statusCode: 429, code: 'TRAFFIK_ERR_RATE_LIMITED', error: 'Too Many Requests', message: 'Rate limit exceeded, retry in 60 seconds' })
})

t.test('waiting exactly retry-after succeeds, and one millisecond less does not', async (t) => {
  const { app, clock } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '2/1500ms' } } }, ok)
  })
  clock.advance(200)
  await app.inject('/')
  await app.inject('/')
  const rejected = await app.inject('/')
  t.equal(rejected.statusCode, 429)
  const seconds = Number(rejected.headers['retry-after'])
  t.equal(seconds, 2, '1300 ms rounds up to 2 s')
  clock.advance(1299)
  t.equal((await app.inject('/')).statusCode, 429, 'not yet at 1299 ms')
  clock.advance(1)
  t.equal((await app.inject('/')).statusCode, 200, 'allowed at exactly the window end')
})

t.test('keys use the route pattern: /items/1 and /items/2 share the budget of /items/:id', async (t) => {
  const { app, backend } = await buildApp(t, {}, (app) => {
    app.get('/items/:id', { config: { rateLimit: { rate: '2/min' } } }, ok)
  })
  t.equal((await app.inject('/items/1')).statusCode, 200)
  t.equal((await app.inject('/items/2')).statusCode, 200)
  t.equal((await app.inject('/items/3')).statusCode, 429)
  t.equal(backend.size, 1, 'one key for the route')
  t.equal(await backend.get('GET:/items/:id:{127.0.0.1}') !== null, true, 'key layout <METHOD>:<pattern>:{<identifier>}')
})

t.test('two routes with one uid share a budget; different uids do not', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/a', { config: { rateLimit: { uid: 'shared', rate: '2/min' } } }, ok)
    app.post('/b', { config: { rateLimit: { uid: 'shared', rate: '2/min' } } }, ok)
    app.get('/c', { config: { rateLimit: { rate: '2/min' } } }, ok)
  })
  t.equal((await app.inject('/a')).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/b' })).statusCode, 200)
  t.equal((await app.inject('/a')).statusCode, 429)
  t.equal((await app.inject({ method: 'POST', url: '/b' })).statusCode, 429)
  t.equal((await app.inject('/c')).statusCode, 200, 'another uid has its own budget')
  t.equal(app.throttle.get('shared')?.uid, 'shared')
})

t.test('EXEMPTED requests get no headers and touch no backend', async (t) => {
  class CountingBackend extends InMemoryBackend {
    calls = 0
    override evaluate (...args: Parameters<InMemoryBackend['evaluate']>): ReturnType<InMemoryBackend['evaluate']> {
      this.calls++
      return super.evaluate(...args)
    }
  }
  const backend = new CountingBackend()
  const app = Fastify()
  await app.register(traffik, { backend })
  app.get('/', {
    config: { rateLimit: { rate: '1/min', identifier: (req) => req.headers['x-internal'] === 'yes' ? EXEMPTED : req.ip } }
  }, ok)
  t.teardown(async () => { await app.close() })
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({ url: '/', headers: { 'x-internal': 'yes' } })
    t.equal(res.statusCode, 200)
    t.notOk(res.headers['x-ratelimit-limit'], 'no headers')
  }
  t.equal(backend.calls, 0, 'no backend call for exempt requests')
  t.equal((await app.inject('/')).statusCode, 200)
  t.equal(backend.calls, 1)
})

t.test('check and stat do not consume; hit does', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'probe', rate: '2/min' } } }, ok)
  })
  const throttle = app.throttle.get('probe')!
  const request = { ip: '10.0.0.1' }
  for (let i = 0; i < 3; i++) {
    const checked = await throttle.check(request)
    t.same([checked.allowed, checked.remaining], [true, 1], 'check answers as if it consumed, without consuming')
    const stat = await throttle.stat(request)
    t.same([stat.allowed, stat.remaining, stat.limit], [true, 2, 2])
  }
  const hit = await throttle.hit(request)
  t.same([hit.allowed, hit.remaining], [true, 1])
  t.equal((await throttle.stat(request)).remaining, 1)
  t.equal((await throttle.check(request, { cost: 2 })).allowed, false, 'a check with a larger cost is refused')
  t.equal((await throttle.stat(request)).remaining, 1, 'the refused check consumed nothing')
})

t.test('fastify.throttle.reset() restores capacity', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/hour' } } }, ok)
  })
  await app.inject('/')
  t.equal((await app.inject('/')).statusCode, 429)
  await app.throttle.reset()
  t.equal((await app.inject('/')).statusCode, 200)
})

t.test('throttle.reset(request) clears one client; throttle.reset() the whole throttle', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'one', rate: '1/hour' } } }, ok)
    app.get('/other', { config: { rateLimit: { uid: 'two', rate: '1/hour' } } }, ok)
  })
  await app.inject({ url: '/', remoteAddress: '10.0.0.1' })
  await app.inject({ url: '/', remoteAddress: '10.0.0.2' })
  await app.inject('/other')
  await app.throttle.get('one')!.reset({ ip: '10.0.0.1' })
  t.equal((await app.inject({ url: '/', remoteAddress: '10.0.0.1' })).statusCode, 200)
  t.equal((await app.inject({ url: '/', remoteAddress: '10.0.0.2' })).statusCode, 429)
  await app.throttle.get('one')!.reset()
  t.equal((await app.inject({ url: '/', remoteAddress: '10.0.0.2' })).statusCode, 200)
  t.equal((await app.inject('/other')).statusCode, 429, 'another throttle is untouched')
})

t.test('global limits, per-route replacement and opt-out', async (t) => {
  const { app } = await buildApp(t, { global: { rate: '1/min' } }, (app) => {
    app.get('/a', ok)
    app.get('/b', ok)
    app.get('/free', { config: { rateLimit: false } }, ok)
    app.get('/own', { config: { rateLimit: { rate: '3/min' } } }, ok)
  })
  t.equal((await app.inject('/a')).statusCode, 200)
  t.equal((await app.inject('/a')).statusCode, 429)
  t.equal((await app.inject('/b')).statusCode, 200, 'without a uid, each route counts on its own')
  for (let i = 0; i < 5; i++) {
    const res = await app.inject('/free')
    t.equal(res.statusCode, 200)
    t.notOk(res.headers['x-ratelimit-limit'])
  }
  const own = []
  for (let i = 0; i < 4; i++) own.push((await app.inject('/own')).statusCode)
  t.same(own, [200, 200, 200, 429], "a route's own limit replaces the global one")
})

t.test('a global limit with a uid is one budget across routes', async (t) => {
  const { app } = await buildApp(t, { global: { uid: 'site', rate: '2/min' } }, (app) => {
    app.get('/a', ok)
    app.get('/b', ok)
  })
  t.equal((await app.inject('/a')).statusCode, 200)
  t.equal((await app.inject('/b')).statusCode, 200)
  t.equal((await app.inject('/a')).statusCode, 429)
  t.equal(app.throttle.throttles.size, 1)
})

t.test('defaults are inherited by route limits and by fastify.throttle.create', async (t) => {
  const { app } = await buildApp(t, { defaults: { rate: '1/min', headers: false } }, (app) => {
    app.get('/', { config: { rateLimit: {} } }, ok)
  })
  const first = await app.inject('/')
  t.equal(first.statusCode, 200)
  t.notOk(first.headers['x-ratelimit-limit'], 'headers: false inherited')
  t.equal((await app.inject('/')).statusCode, 429, 'rate inherited')
  const made = app.throttle.create({ uid: 'made' })
  t.equal(made.rate?.limit, 1)
  t.equal(app.throttle.get('made'), made)
})

t.test('multiple limits on one route are all-or-nothing', async (t) => {
  const { app, backend } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: [{ uid: 'burst', rate: '2/s' }, { uid: 'sustained', rate: '3/min' }] } }, ok)
  })
  const { clock } = { clock: backend.clock as ManualClock }
  t.equal((await app.inject('/')).statusCode, 200)
  t.equal((await app.inject('/')).statusCode, 200)
  const third = await app.inject('/')
  t.equal(third.statusCode, 429, 'the per-second limit rejects')
  t.equal(third.headers['x-ratelimit-limit'], '2', 'headers report the rejecting limit')
  t.equal((await app.throttle.get('sustained')!.stat({ ip: '127.0.0.1' })).remaining, 1, 'the other limit was not charged for the rejected request')
  clock.advance(1000)
  const fourth = await app.inject('/')
  t.equal(fourth.statusCode, 200)
  t.equal(fourth.headers['x-ratelimit-limit'], '3', 'the most restrictive limit (least remaining) is reported')
  t.equal(fourth.headers['x-ratelimit-remaining'], '0')
  t.equal((await app.inject('/')).statusCode, 429)
})

t.test('rate functions, cost functions, limit 0 and unlimited rates', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/tier', { config: { rateLimit: { rate: async (req) => req.headers['x-tier'] === 'gold' ? '3/min' : '1/min' } } }, ok)
    app.get('/cost', { config: { rateLimit: { rate: '10/min', cost: (req) => Number(req.headers['x-cost'] ?? 1) } } }, ok)
    app.get('/blocked', { config: { rateLimit: { rate: '0/min' } } }, ok)
    app.get('/unlimited', { config: { rateLimit: { rate: null } } }, ok)
  })
  const gold = []
  for (let i = 0; i < 4; i++) gold.push((await app.inject({ url: '/tier', headers: { 'x-tier': 'gold' } })).statusCode)
  t.same(gold, [200, 200, 200, 429])
  const heavy = await app.inject({ url: '/cost', headers: { 'x-cost': '7' } })
  t.equal(heavy.headers['x-ratelimit-remaining'], '3')
  t.equal((await app.inject({ url: '/cost', headers: { 'x-cost': '4' } })).statusCode, 429)
  t.equal((await app.inject({ url: '/cost', headers: { 'x-cost': '0' } })).statusCode, 200, 'cost 0 is allowed and consumes nothing')
  t.equal((await app.inject({ url: '/cost', headers: { 'x-cost': '3' } })).statusCode, 200)
  const bad = await app.inject({ url: '/cost', headers: { 'x-cost': '-1' } })
  t.equal(bad.statusCode, 500)
  t.equal(bad.json().code, 'TRAFFIK_ERR_INVALID_COST')
  const blocked = await app.inject('/blocked')
  t.equal(blocked.statusCode, 429)
  t.notOk(blocked.headers['retry-after'], 'waiting never helps, so no retry-after')
  for (let i = 0; i < 3; i++) {
    const res = await app.inject('/unlimited')
    t.equal(res.statusCode, 200)
    t.notOk(res.headers['x-ratelimit-limit'])
  }
})

t.test('a cost larger than the limit is rejected with a clear answer', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '5/min', cost: 6 } } }, ok)
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 429)
  t.notOk(res.headers['retry-after'])
  t.equal(res.json().message, 'Rate limit exceeded, and retrying cannot help: the request costs more than the limit allows')
})

t.test('the 429 message says second or seconds as the number needs', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '1/500ms' } } }, ok)
  })
  await app.inject('/')
  const res = await app.inject('/')
  t.equal(res.statusCode, 429)
  t.equal(res.json().message, 'Rate limit exceeded, retry in 1 second')
})

t.test('identifier functions: sync, async, throwing, non-string', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/user', { config: { rateLimit: { rate: '1/min', identifier: async (req) => String(req.headers['x-user']) } } }, ok)
    app.get('/throws', { config: { rateLimit: { rate: '1/min', identifier: () => { throw new Error('boom') } } } }, ok)
    app.get('/number', { config: { rateLimit: { rate: '1/min', identifier: () => 42 as unknown as string } } }, ok)
  })
  t.equal((await app.inject({ url: '/user', headers: { 'x-user': 'a' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/user', headers: { 'x-user': 'b' } })).statusCode, 200)
  t.equal((await app.inject({ url: '/user', headers: { 'x-user': 'a' } })).statusCode, 429)
  const thrown = await app.inject('/throws')
  t.equal(thrown.statusCode, 500, 'an identifier that throws fails the request, not the process')
  const number = await app.inject('/number')
  t.equal(number.statusCode, 500)
  t.equal(number.json().code, 'TRAFFIK_ERR_INVALID_IDENTIFIER')
})

t.test('onError policies decide what a failing backend means', async (t) => {
  class BrokenBackend extends InMemoryBackend {
    override evaluate (): never {
      throw new Error('backend down')
    }
  }
  const backend = new BrokenBackend()
  const app = Fastify()
  await app.register(traffik, { backend })
  app.get('/closed', { config: { rateLimit: { rate: '1/min' } } }, ok)
  app.get('/open', { config: { rateLimit: { rate: '1/min', onError: 'allow' } } }, ok)
  app.get('/raise', { config: { rateLimit: { rate: '1/min', onError: 'raise' } } }, ok)
  app.get('/handler', { config: { rateLimit: { rate: '1/min', onError: (_req, error) => error.message === 'backend down' ? 'allow' : 'throttle' } } }, ok)
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject('/closed')).statusCode, 429)
  const open = await app.inject('/open')
  t.equal(open.statusCode, 200)
  t.notOk(open.headers['x-ratelimit-limit'])
  t.equal((await app.inject('/raise')).statusCode, 500)
  t.equal((await app.inject('/handler')).statusCode, 200)
})

t.test('onThrottled replaces the rejection', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', {
      config: {
        rateLimit: {
          rate: '1/min',
          onThrottled: (_req, reply, info) => reply.code(429).send({ slowDown: info.retryAfterSeconds })
        }
      }
    }, ok)
    app.get('/value', { config: { rateLimit: { rate: '1/min', onThrottled: async () => ({ custom: true }) } } }, ok)
  })
  await app.inject('/')
  const res = await app.inject('/')
  t.equal(res.statusCode, 429)
  t.same(res.json(), { slowDown: 60 })
  t.equal(res.headers['x-ratelimit-remaining'], '0')
  await app.inject('/value')
  const value = await app.inject('/value')
  t.equal(value.statusCode, 429)
  t.same(value.json(), { custom: true })
})

t.test("hook: 'onRequest' rejects before the body is parsed", async (t) => {
  let parsed = 0
  const { app } = await buildApp(t, { hook: 'onRequest' }, (app) => {
    app.addHook('preValidation', async () => { parsed++ })
    app.post('/', { config: { rateLimit: { rate: '1/min' } } }, ok)
  })
  await app.inject({ method: 'POST', url: '/', payload: { a: 1 } })
  const res = await app.inject({ method: 'POST', url: '/', payload: { a: 1 } })
  t.equal(res.statusCode, 429)
  t.equal(parsed, 1, 'the rejected request never reached preValidation')
})

t.test('disable / enable, disableAll / enableAll, and live updates', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'live', rate: '1/min' } } }, ok)
  })
  const throttle = app.throttle.get('live')!
  await app.inject('/')
  t.equal((await app.inject('/')).statusCode, 429)
  throttle.disable()
  t.equal((await app.inject('/')).statusCode, 200)
  throttle.enable()
  t.equal((await app.inject('/')).statusCode, 429)
  app.throttle.disableAll()
  t.equal((await app.inject('/')).statusCode, 200)
  app.throttle.enableAll()
  throttle.updateRate('3/min')
  t.equal((await app.inject('/')).statusCode, 200, 'the raised rate applies to the next request')
  throttle.updateCost(5)
  t.equal((await app.inject('/')).statusCode, 429)
})

t.test('invalid configuration fails at registration with a coded error', async (t) => {
  const register = async (options: object): Promise<void> => {
    const app = Fastify()
    t.teardown(async () => { await app.close() })
    await app.register(traffik, options)
  }
  await t.rejects(register({ hook: 'onSend' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /hook/ })
  await t.rejects(register({ backend: {} }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /backend/ })
  await t.rejects(register({ global: { rate: '10/fortnight' } }), { code: 'TRAFFIK_ERR_INVALID_RATE', message: /fortnight/ }, 'a bad global rate fails at registration')
  await t.rejects(register({ global: { rate: '1/s', cost: -2 } }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /cost/ })
  await t.rejects(register({ backends: [new InMemoryBackend(), 'redis'] }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /backends/ })
  await t.rejects(register({ resolveBackend: 'tenant' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /resolveBackend/ })
  await t.rejects(register({ defaults: { rate: '1/s', limit: 5 } }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /limit/ })
  await t.rejects(register({ wat: true }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /wat/ })

  const app = Fastify()
  await app.register(traffik)
  t.teardown(async () => { await app.close() })
  const route = (rateLimit: unknown) => () => app.get(`/r${Math.random()}`, { config: { rateLimit: rateLimit as never } }, ok)
  t.throws(route('100/min'), { code: 'TRAFFIK_ERR_INVALID_ROUTE_CONFIG' })
  t.throws(route(true), { code: 'TRAFFIK_ERR_INVALID_ROUTE_CONFIG' })
  t.throws(route(null), { code: 'TRAFFIK_ERR_INVALID_ROUTE_CONFIG' })
  t.throws(route([]), { code: 'TRAFFIK_ERR_INVALID_ROUTE_CONFIG' })
  t.throws(route({ rate: '5/fortnight' }), { code: 'TRAFFIK_ERR_INVALID_RATE', message: /fortnight/ })
  t.throws(route({ rate: '5/s', cost: -1 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /cost/ })
  t.throws(route({ rate: '5/s', cost: 1.5 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /cost/ })
  t.throws(route({ rate: '5/s', onError: 'ignore' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /onError/ })
  t.throws(route({ rate: '5/s', headers: 'draft-99' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /headers/ })
  t.throws(route({ rate: '5/s', strategy: 'token-bucket' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /strategy/ })
  t.throws(route({ rate: '5/s', identifier: 'ip' }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /identifier/ })
  t.throws(route({ rate: '5/s', backend: new InMemoryBackend(), dynamicBackend: true }), { code: 'TRAFFIK_ERR_CONFLICTING_OPTIONS' })
  t.throws(route({}), { code: 'TRAFFIK_ERR_INVALID_RATE', message: /required/ })
  t.throws(route([{ uid: 'x', rate: '1/s' }, { uid: 'x', rate: '2/s' }]), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'one budget twice on a route')
  t.throws(() => new InMemoryBackend({ maxKeys: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /maxKeys/ })
  t.throws(() => new InMemoryBackend({ timeoutMs: -1 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /timeoutMs/ })
})

t.test('registries are per instance: many apps in one process never clash on uids', async (t) => {
  for (let i = 0; i < 5; i++) {
    const app = Fastify()
    await app.register(traffik)
    app.get('/', { config: { rateLimit: { uid: 'same-uid', rate: '1/min' } } }, ok)
    t.equal((await app.inject('/')).statusCode, 200, `app ${i} has its own registry and backend`)
    await app.close()
  }
})

t.test('owned backends: initialized on ready, reset and closed on close; persistent ones are not reset', async (t) => {
  const events: string[] = []
  class Tracking extends InMemoryBackend {
    constructor (readonly label: string, persistent: boolean) { super({ persistent }) }
    protected override async onInitialize (): Promise<void> { events.push(`${this.label}:init`); await super.onInitialize() }
    override async reset (): Promise<void> { events.push(`${this.label}:reset`); await super.reset() }
    protected override async onClose (): Promise<void> { events.push(`${this.label}:close`); await super.onClose() }
  }
  const app = Fastify()
  await app.register(traffik, { backend: new Tracking('main', false), backends: [new Tracking('extra', true)] })
  await app.ready()
  t.same(events.sort(), ['extra:init', 'main:init'])
  events.length = 0
  await app.close()
  t.same(events, ['main:reset', 'main:close', 'extra:close'])
})

t.test('fastify.close() leaves no open handles', async (t) => {
  const backend = new InMemoryBackend({ sweepIntervalMs: 1000 })
  const app = Fastify()
  await app.register(traffik, { backend })
  app.get('/', { config: { rateLimit: { rate: '5/s' } } }, ok)
  t.notOk(backend.sweeping, 'no timer before ready')
  await app.ready()
  t.ok(backend.sweeping, 'one sweep timer while running')
  await app.inject('/')
  await app.close()
  t.notOk(backend.sweeping, 'the sweep timer is gone after close')
  t.ok(backend.closed)
})

t.test('createThrottle works without the plugin', async (t) => {
  const { createThrottle } = await import('../../lib/index.js')
  const clock = new ManualClock()
  const throttle = createThrottle({ uid: 'job', rate: '2/min', backend: new InMemoryBackend({ clock }) })
  const results = []
  for (let i = 0; i < 3; i++) results.push((await throttle.hit({ ip: '1.2.3.4' })).allowed)
  t.same(results, [true, true, false])
  t.ok(throttle.backend instanceof ThrottleBackend)
  t.throws(() => createThrottle({ uid: '', rate: '1/s' }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})
