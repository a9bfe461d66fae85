/**
 * A backend instance outlives the apps that use it: an app factory (or a test suite) that builds
 * an app, closes it and builds the next one around the same backend gets a working backend
 * again. The plugin closes owned backends in onClose and initializes them in onReady, so every
 * built-in backend must come back after close() + initialize().
 */
import Fastify from 'fastify'
import t from 'tap'
import { InMemoryBackend, MemcachedBackend, RedisBackend, TokenBucket, traffik, type ThrottleBackend } from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

async function lifeOfOneApp (backend: ThrottleBackend, client: string): Promise<number[]> {
  const app = Fastify()
  await app.register(traffik, { backend })
  for (const strategy of ['fixed', 'token'] as const) {
    app.get(`/${strategy}`, {
      config: { rateLimit: { rate: '2/min', onError: 'raise', identifier: () => client, strategy: strategy === 'token' ? new TokenBucket() : undefined } }
    }, async () => 'ok')
  }
  await app.ready()
  const statuses: number[] = []
  try {
    for (const path of ['/fixed', '/fixed', '/fixed', '/token', '/token', '/token']) statuses.push((await app.inject(path)).statusCode)
  } finally {
    await app.close()
  }
  return statuses
}

const backends: Array<[string, () => Promise<ThrottleBackend>]> = [
  ['InMemoryBackend', async () => new InMemoryBackend()],
  ['RedisBackend', async () => new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace('ro'), timeoutMs: 2000 })],
  ['MemcachedBackend', async () => new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace('ro'), timeoutMs: 2000 })]
]

for (const [name, make] of backends) {
  t.test(`${name}: one instance serves app after app (close, then initialize again)`, async (t) => {
    const backend = await make()
    for (let life = 1; life <= 3; life++) {
      t.same(await lifeOfOneApp(backend, `client-${life}`), [200, 200, 429, 200, 200, 429], `app ${life}: exact limits, no backend errors`)
    }
    t.equal(backend.closed, true, 'closed by the last app')
  })
}
