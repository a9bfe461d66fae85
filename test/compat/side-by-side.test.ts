/**
 * The same scenarios against @fastify/rate-limit and fastify-traffik/compat: equal statuses,
 * rate-limit headers and bodies, response by response.
 */
import t from 'tap'
import { run, seen, type Scenario, type Seen } from './side-by-side.js'

const ok = async (): Promise<string> => 'ok'

async function times (n: number, send: () => Promise<Seen>): Promise<Seen[]> {
  const out: Seen[] = []
  for (let i = 0; i < n; i++) out.push(await send())
  return out
}

const scenarios: Record<string, Scenario> = {
  'global limit: 200, 200, 429, then 200 after the window': async (app, plugin, step) => {
    await app.register(plugin, { max: 2, timeWindow: 1000 })
    app.get('/', ok)
    const out = await times(3, async () => seen(await app.inject('/')))
    step.tick(1100)
    out.push(seen(await app.inject('/')))
    return out
  },
  "text timeWindow '1 minute', headers counting down as time passes": async (app, plugin, step) => {
    await app.register(plugin, { max: 2, timeWindow: '1 minute' })
    app.get('/', ok)
    const out = [seen(await app.inject('/'))]
    step.tick(5000)
    out.push(...await times(2, async () => seen(await app.inject('/'))))
    return out
  },
  'exponentialBackoff: each rejection doubles the wait, plugin and route level': async (app, plugin) => {
    await app.register(plugin, { max: 2, timeWindow: 500, exponentialBackoff: true })
    app.get('/', ok)
    app.get('/route', { config: { rateLimit: { max: 1, timeWindow: 1000 } } }, ok)
    return [...await times(6, async () => seen(await app.inject('/'))), ...await times(4, async () => seen(await app.inject('/route')))]
  },
  'exponentialBackoff with ban: 403 from the rejection after `ban` others': async (app, plugin) => {
    await app.register(plugin, { max: 1, timeWindow: 1000, exponentialBackoff: true, ban: 1 })
    app.get('/', ok)
    return await times(5, async () => seen(await app.inject('/')))
  },
  'global routes share one counter per client': async (app, plugin) => {
    await app.register(plugin, { max: 2, timeWindow: 1000 })
    app.get('/a', ok)
    app.get('/b', ok)
    return [seen(await app.inject('/a')), seen(await app.inject('/b')), seen(await app.inject('/a'))]
  },
  'global: false, a route limit, a route without one, rateLimit: false': async (app, plugin) => {
    await app.register(plugin, { global: false })
    app.get('/limited', { config: { rateLimit: { max: 1, timeWindow: 2000 } } }, ok)
    app.get('/free', ok)
    app.get('/off', { config: { rateLimit: false } }, ok)
    return [
      ...await times(2, async () => seen(await app.inject('/limited'))),
      ...await times(2, async () => seen(await app.inject('/free'))),
      seen(await app.inject('/off'))
    ]
  },
  'route limits inherit the global timeWindow and count on their own': async (app, plugin) => {
    await app.register(plugin, { max: 5, timeWindow: 6000 })
    app.get('/r', { config: { rateLimit: { max: 1 } } }, ok)
    app.get('/g', ok)
    return [seen(await app.inject('/r')), seen(await app.inject('/r')), seen(await app.inject('/g'))]
  },
  'allowList as an array and as a function (request, key)': async (app, plugin) => {
    await app.register(plugin, { max: 1, timeWindow: 1000, allowList: ['127.0.0.1'] })
    app.get('/', ok)
    app.get('/fn', { config: { rateLimit: { max: 1, allowList: (_req: unknown, key: string) => key === '10.0.0.1' } } }, ok)
    return [
      ...await times(3, async () => seen(await app.inject('/'))),
      ...await times(2, async () => seen(await app.inject({ url: '/', remoteAddress: '10.0.0.2' }))),
      ...await times(3, async () => seen(await app.inject({ url: '/fn', remoteAddress: '10.0.0.1' }))),
      ...await times(2, async () => seen(await app.inject({ url: '/fn', remoteAddress: '10.0.0.3' })))
    ]
  },
  'async keyGenerator and a max function of the key': async (app, plugin) => {
    await app.register(plugin, {
      timeWindow: 1000,
      keyGenerator: async (req: { headers: Record<string, string> }) => req.headers['x-user'] ?? 'anon',
      max: async (_req: unknown, key: string) => key === 'pro' ? 3 : 1
    })
    app.get('/', ok)
    return [
      ...await times(4, async () => seen(await app.inject({ url: '/', headers: { 'x-user': 'pro' } }))),
      ...await times(2, async () => seen(await app.inject({ url: '/', headers: { 'x-user': 'free' } })))
    ]
  },
  'hiding headers: addHeaders on the 429 and addHeadersOnExceeding on 200s': async (app, plugin) => {
    await app.register(plugin, {
      max: 1,
      timeWindow: 1000,
      addHeadersOnExceeding: { 'x-ratelimit-reset': false },
      addHeaders: { 'x-ratelimit-limit': false, 'retry-after': false }
    })
    app.get('/', ok)
    return times(2, async () => seen(await app.inject('/')))
  },
  'enableDraftSpec: ratelimit-* names and retry-after': async (app, plugin, step) => {
    await app.register(plugin, { max: 1, timeWindow: 10000, enableDraftSpec: true })
    app.get('/', ok)
    const out = [seen(await app.inject('/'))]
    step.tick(1000)
    out.push(seen(await app.inject('/')))
    return out
  },
  'errorResponseBuilder: a custom body and status': async (app, plugin) => {
    await app.register(plugin, {
      max: 1,
      timeWindow: 1000,
      errorResponseBuilder: (_req: unknown, context: { max: number, after: string, ttl: number }) => ({ statusCode: 429, limit: context.max, after: context.after, ttl: context.ttl })
    })
    app.get('/', ok)
    return times(2, async () => seen(await app.inject('/')))
  },
  'a custom error handler sees the 429 error': async (app, plugin) => {
    await app.register(plugin, { max: 1, timeWindow: 1000 })
    app.setErrorHandler(async (error: Error & { statusCode?: number }, _req, reply) => {
      await reply.code(error.statusCode ?? 500).send({ custom: error.message })
    })
    app.get('/', ok)
    return times(2, async () => seen(await app.inject('/')))
  },
  'hook preHandler keyed on a user set by an earlier hook': async (app, plugin) => {
    await app.register(plugin, { max: 1, timeWindow: 1000, hook: 'preHandler', keyGenerator: (req: { user?: string }) => req.user ?? 'anon' })
    app.decorateRequest('user', '')
    app.addHook('preHandler', async (req) => { (req as unknown as { user: string }).user = String(req.headers['x-user']) })
    app.get('/', ok)
    return [
      ...await times(2, async () => seen(await app.inject({ url: '/', headers: { 'x-user': 'a' } }))),
      seen(await app.inject({ url: '/', headers: { 'x-user': 'b' } }))
    ]
  },
  'fastify.rateLimit() and fastify.rateLimit(options) as hooks, on the not-found handler too': async (app, plugin) => {
    await app.register(plugin, { global: false, max: 2, timeWindow: 1000 })
    app.get('/own', { preHandler: app.rateLimit({ max: 1, timeWindow: 5000 }) }, ok)
    app.setNotFoundHandler({ preHandler: app.rateLimit() }, async (_req, reply) => { await reply.code(404).send('nope') })
    return [
      ...await times(2, async () => seen(await app.inject('/own'))),
      ...await times(3, async () => seen(await app.inject('/missing')))
    ]
  },
  'two registrations in one app: both limits apply': async (app, plugin) => {
    await app.register(plugin, { max: 3, timeWindow: 1000 })
    await app.register(plugin, { max: 1, timeWindow: 5000, keyGenerator: () => 'everyone' })
    app.get('/', ok)
    return times(2, async () => seen(await app.inject('/')))
  },
  'max: 0 refuses every request': async (app, plugin) => {
    await app.register(plugin, { max: 0, timeWindow: 1000 })
    app.get('/', ok)
    return times(2, async () => seen(await app.inject('/')))
  },
  "the user's own onRequest hooks still run": async (app, plugin) => {
    await app.register(plugin, { max: 1, timeWindow: 1000 })
    let ran = 0
    app.get('/', { onRequest: [async () => { ran++ }] }, ok)
    const out = await times(2, async () => seen(await app.inject('/')))
    out.push({ status: ran, headers: {}, body: 'user hook calls' })
    return out
  }
}

for (const [name, scenario] of Object.entries(scenarios)) {
  t.test(name, async (t) => {
    const before = await run('old', scenario)
    const after = await run('compat', scenario)
    t.same(after, before, 'compat answers as @fastify/rate-limit does')
  })
}

t.test('IPv6 clients: trustProxy, /64 sharing, the mapped IPv4 form', async (t) => {
  const scenario: Scenario = async (app, plugin) => {
    await app.register(plugin, { max: 1, timeWindow: 1000 })
    app.get('/', ok)
    const from = async (ip: string): Promise<Seen> => seen(await app.inject({ url: '/', headers: { 'x-forwarded-for': ip } }))
    return [await from('2001:db8:1:2::1'), await from('2001:db8:1:2::2'), await from('2001:db8:1:3::1'), await from('::ffff:10.0.0.1'), await from('10.0.0.1')]
  }
  t.same(await run('compat', scenario, { trustProxy: true }), await run('old', scenario, { trustProxy: true }))
})
