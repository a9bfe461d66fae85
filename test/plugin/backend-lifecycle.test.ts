/**
 * Who owns which backend: the plugin initializes its `backend` and `backends` on ready and closes
 * them on close (resetting the non-persistent ones first); a backend that only `resolveBackend`
 * returns is initialized once, on first use, however many requests race for it, and left to its owner.
 */
import Fastify from 'fastify'
import t from 'tap'
import { traffik } from '../../lib/index.js'
import { CountingBackend } from './counting-backend.js'

t.test('backends: initialized on ready, reset (when not persistent) and closed on close', async (t) => {
  const main = new CountingBackend()
  const volatile = new CountingBackend({ persistent: false })
  const durable = new CountingBackend({ persistent: true })
  const app = Fastify()
  await app.register(traffik, { backend: main, backends: [volatile, durable, volatile] })
  t.same([main, volatile, durable].map((b) => b.initializations), [0, 0, 0], 'nothing happens before ready')
  await app.ready()
  t.same([main, volatile, durable].map((b) => b.initializations), [1, 1, 1], 'each initialized once on ready (duplicates count once)')
  t.ok([main, volatile, durable].every((b) => b.initialized))
  await app.close()
  t.same([main, volatile, durable].map((b) => b.resets), [1, 1, 0], 'non-persistent backends are reset before close, persistent ones never')
  t.same([main, volatile, durable].map((b) => b.closes), [1, 1, 1], 'each closed once')
  t.ok([main, volatile, durable].every((b) => b.closed))
})

t.test('fastify.throttle.reset() clears every owned backend', async (t) => {
  const volatile = new CountingBackend()
  const durable = new CountingBackend({ persistent: true })
  const app = Fastify()
  await app.register(traffik, { backends: [volatile, durable] })
  await app.ready()
  await app.throttle.reset()
  t.same([volatile.resets, durable.resets], [1, 1], 'the explicit reset reaches persistent backends too')
  await app.close()
})

t.test('a backend only resolveBackend returns is initialized once under concurrent requests, and not closed by the plugin', async (t) => {
  const foreign = new CountingBackend({}, 50) // initialization takes 50 ms: the requests overlap it
  const app = Fastify()
  await app.register(traffik, { resolveBackend: () => foreign })
  app.get('/', { config: { rateLimit: { rate: '1000/min', dynamicBackend: true } } }, async () => ({ ok: true }))
  await app.ready()
  t.equal(foreign.initializations, 0, 'not initialized by ready: the plugin does not own it')
  const answers = await Promise.all(Array.from({ length: 50 }, async () => (await app.inject('/')).statusCode))
  t.same(new Set(answers), new Set([200]))
  t.equal(foreign.initializations, 1, '50 concurrent requests, one initialization')
  for (let i = 0; i < 10; i++) await app.inject('/')
  t.equal(foreign.initializations, 1, 'later requests do not initialize it again')
  t.equal(foreign.size, 1, 'the requests counted in it')
  await app.close()
  t.same([foreign.resets, foreign.closes], [0, 0], 'its owner closes it, not the plugin')
  await foreign.close()
})

t.test('a backend listed in backends and returned by resolveBackend is initialized by the plugin, not per request', async (t) => {
  const tenant = new CountingBackend({}, 20)
  const app = Fastify()
  await app.register(traffik, { backends: [tenant], resolveBackend: () => tenant })
  app.get('/', { config: { rateLimit: { rate: '1000/min', dynamicBackend: true } } }, async () => ({ ok: true }))
  await app.ready()
  await Promise.all(Array.from({ length: 20 }, async () => await app.inject('/')))
  t.equal(tenant.initializations, 1)
  await app.close()
  t.equal(tenant.closes, 1)
})
