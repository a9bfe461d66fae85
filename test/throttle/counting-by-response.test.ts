/**
 * Counting by response: a login route limited to 5 failed attempts a minute (`skipSuccessful`).
 * Successful logins never count; 5 failures lock the client out at the 6th attempt, before the
 * handler runs; on InMemory, Redis and Memcached. Under concurrency the refunds never give back
 * more than was charged (a model: the limit holds exactly the failures admitted). Options are
 * validated with coded errors.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { createThrottle, InMemoryBackend, ManualClock, MemcachedBackend, RedisBackend, traffik, type ThrottleBackend, type ThrottleOptions } from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'
import { ALIGNED_START } from '../helpers/build-app.js'

interface LoginApp { app: FastifyInstance, handled: () => number, remaining: () => Promise<number> }

async function loginApp (t: Test, backend: ThrottleBackend, options: ThrottleOptions = { skipSuccessful: true }): Promise<LoginApp> {
  let handled = 0
  const app = Fastify()
  await app.register(traffik, { backend })
  app.post('/login', { config: { rateLimit: { uid: 'login', rate: '5/min', identifier: () => 'client-1', ...options } } }, async (request, reply) => {
    handled++
    const { password } = request.body as { password: string }
    if (password !== 'secret') return await reply.code(401).send({ error: 'bad credentials' })
    return { token: 't' }
  })
  await app.ready()
  t.teardown(async () => { await app.close() })
  const throttle = app.throttle.get('login')!
  return { app, handled: () => handled, remaining: async () => (await throttle.stat({ ip: '127.0.0.1' } as never)).remaining }
}

/** Waits until the limit shows `expected` remaining: a refund lands after the response on a network backend. */
async function settled (login: LoginApp, expected: number): Promise<number> {
  let remaining = await login.remaining()
  for (let i = 0; i < 500 && remaining !== expected; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2))
    remaining = await login.remaining()
  }
  return remaining
}

async function lockout (t: Test, backend: ThrottleBackend): Promise<void> {
  const login = await loginApp(t, backend)
  const attempt = async (password: string): Promise<number> => (await login.app.inject({ method: 'POST', url: '/login', payload: { password } })).statusCode
  for (let i = 0; i < 10; i++) {
    t.equal(await attempt('secret'), 200)
    t.equal(await settled(login, 5), 5, 'a successful login gives its charge back')
  }
  const failures: number[] = []
  for (let i = 0; i < 5; i++) {
    failures.push(await attempt('wrong'))
    t.equal(await settled(login, 4 - i), 4 - i, `failure ${i + 1} counts`)
  }
  t.same(failures, [401, 401, 401, 401, 401])
  const before = login.handled()
  t.equal(await attempt('wrong'), 429, 'the 6th attempt is refused')
  t.equal(await attempt('secret'), 429, 'so is a correct password while locked out')
  t.equal(login.handled(), before, 'before the handler runs')
}

t.test('InMemory: 5 failed logins lock the client out at the 6th, before the handler; successes never count', async (t) => {
  await lockout(t, new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }))
})

t.test('Redis: the same', async (t) => {
  await lockout(t, new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace() }))
})

t.test('Memcached: the same', async (t) => {
  await lockout(t, new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace() }))
})

t.test('countIf decides per response; skipFailed counts only successes', async (t) => {
  const backend = new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) })
  const custom = await loginApp(t, backend, { countIf: async (_request, reply) => reply.statusCode === 401 })
  await custom.app.inject({ method: 'POST', url: '/login', payload: { password: 'secret' } })
  t.equal(await settled(custom, 5), 5)
  await custom.app.inject({ method: 'POST', url: '/login', payload: { password: 'wrong' } })
  t.equal(await settled(custom, 4), 4)
  const successes = await loginApp(t, new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }), { skipFailed: true })
  await successes.app.inject({ method: 'POST', url: '/login', payload: { password: 'wrong' } })
  t.equal(await settled(successes, 5), 5, 'a failure gives its charge back')
  await successes.app.inject({ method: 'POST', url: '/login', payload: { password: 'secret' } })
  t.equal(await settled(successes, 4), 4, 'a success counts')
  const throwing = await loginApp(t, new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }), { countIf: () => { throw new Error('boom') } })
  await throwing.app.inject({ method: 'POST', url: '/login', payload: { password: 'secret' } })
  t.equal(await throwing.remaining(), 4, 'a countIf that throws keeps the charge')
})

t.test('concurrent requests: refunds never give back more than was charged (model: the limit holds the failures admitted)', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 8 }), async (outcomes, limit) => {
    const app = Fastify()
    await app.register(traffik, { backend: new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }) })
    app.post('/login', { config: { rateLimit: { uid: 'login', rate: { limit, windowMs: 60_000 }, identifier: () => 'c', skipSuccessful: true } } }, async (request, reply) => {
      // Every handler yields, so the requests overlap: charges are held while others decide.
      await new Promise((resolve) => setImmediate(resolve))
      return (request.body as { ok: boolean }).ok ? 'ok' : await reply.code(401).send('no')
    })
    await app.ready()
    try {
      const statuses = await Promise.all(outcomes.map(async (ok) => (await app.inject({ method: 'POST', url: '/login', payload: { ok } })).statusCode))
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
      const failuresAdmitted = statuses.filter((s) => s === 401).length
      const admitted = statuses.filter((s) => s !== 429).length
      const remaining = (await app.throttle.get('login')!.stat({ ip: '127.0.0.1' } as never)).remaining
      if (admitted > limit && statuses.slice(0, limit).includes(429)) throw new Error('over-admitted')
      if (remaining !== limit - failuresAdmitted) throw new Error(`remaining ${remaining}, model ${limit - failuresAdmitted} (${JSON.stringify(statuses)})`)
      if (failuresAdmitted > limit) throw new Error('more failures than the limit were let through')
    } finally {
      await app.close()
    }
  }), { numRuns: 100 })
  t.pass('100 concurrent bursts: the limit holds exactly the failures admitted')
})

t.test('bad counting options are coded errors', async (t) => {
  const bad: Array<[ThrottleOptions, string]> = [
    [{ countIf: 'yes' as never }, 'TRAFFIK_ERR_INVALID_OPTION'],
    [{ skipSuccessful: 1 as never }, 'TRAFFIK_ERR_INVALID_OPTION'],
    [{ skipFailed: 'no' as never }, 'TRAFFIK_ERR_INVALID_OPTION'],
    [{ skipSuccessful: true, countAborted: 'no' as never }, 'TRAFFIK_ERR_INVALID_OPTION'],
    [{ countAborted: false }, 'TRAFFIK_ERR_INVALID_OPTION'],
    [{ skipSuccessful: true, skipFailed: true }, 'TRAFFIK_ERR_CONFLICTING_OPTIONS'],
    [{ countIf: () => true, skipFailed: true }, 'TRAFFIK_ERR_CONFLICTING_OPTIONS'],
    [{ countIf: () => true, skipSuccessful: true }, 'TRAFFIK_ERR_CONFLICTING_OPTIONS']
  ]
  for (const [options, code] of bad) t.throws(() => createThrottle({ uid: 'x', rate: '1/s', ...options }), { code }, JSON.stringify(Object.keys(options)))
})

t.test('a client that leaves before the response: counts by default, gets its charge back with countAborted: false', async (t) => {
  const { request: httpRequest } = await import('node:http')
  for (const countAborted of [true, false]) {
    const app = Fastify()
    await app.register(traffik, { backend: new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }) })
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => { entered = resolve })
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    let aborted!: () => void
    const abortSeen = new Promise<void>((resolve) => { aborted = resolve })
    app.addHook('onRequestAbort', (_request, done) => { aborted(); done() })
    app.get('/slow', { config: { rateLimit: { uid: 'slow', rate: '5/min', identifier: () => 'c', skipSuccessful: true, countAborted } } }, async () => {
      entered()
      await gate
      return 'late'
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }
    const client = httpRequest({ host: '127.0.0.1', port, path: '/slow' })
    client.on('error', () => {})
    client.end()
    await inHandler
    client.destroy()
    await abortSeen
    // Let the route's own abort hook (after the app's) settle, then the handler finish.
    const throttle = app.throttle.get('slow')!
    let remaining = -1
    for (let i = 0; i < 500; i++) {
      remaining = (await throttle.stat({ ip: '127.0.0.1' } as never)).remaining
      if (remaining === (countAborted ? 4 : 5)) break
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    release()
    t.equal(remaining, countAborted ? 4 : 5, `countAborted: ${String(countAborted)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal((await throttle.stat({ ip: '127.0.0.1' } as never)).remaining, countAborted ? 4 : 5, 'the late response does not settle it again')
    await app.close()
  }
})
