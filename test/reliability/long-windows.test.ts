/**
 * Extreme but valid rates get exact limits on every backend, never an internal error: windows of
 * a century to a millennium (memcached expirations are 32-bit Unix times).
 */
import Fastify from 'fastify'
import t from 'tap'
import {
  FixedWindow, InMemoryBackend, MemcachedBackend, RedisBackend, SlidingWindowCounter, TokenBucket, traffik,
  type RateInput, type Strategy, type ThrottleBackend
} from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const backends: Array<[string, () => Promise<ThrottleBackend>]> = [
  ['InMemoryBackend', async () => new InMemoryBackend()],
  ['RedisBackend', async () => new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace('lw'), persistent: false, timeoutMs: 2000 })],
  ['MemcachedBackend', async () => new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace('lw'), persistent: false, timeoutMs: 2000 })]
]

const rates: Array<[string, RateInput, number]> = [
  ['3/10000 weeks (192 years)', '3/10000 weeks', 3],
  ['3/1000 years', { limit: 3, windowMs: 1000 * 365 * 86_400_000 }, 3],
  ['3/100 years', { limit: 3, windowMs: 100 * 365 * 86_400_000 }, 3]
]

const strategies: Array<[string, () => Strategy]> = [
  ['FixedWindow', () => new FixedWindow()],
  ['SlidingWindowCounter', () => new SlidingWindowCounter()],
  ['TokenBucket', () => new TokenBucket()]
]

for (const [name, make] of backends) {
  t.test(`${name}: windows of centuries`, async (t) => {
    const backend = await make()
    const app = Fastify()
    await app.register(traffik, { backend })
    const routes: string[] = []
    for (const [rateName, rate] of rates) {
      for (const [strategyName, strategy] of strategies) {
        const path = `/${routes.length}`
        routes.push(`${rateName}, ${strategyName}`)
        app.get(path, { config: { rateLimit: { rate, strategy: strategy(), onError: 'raise', identifier: () => 'one' } } }, async () => 'ok')
      }
    }
    t.teardown(async () => { await app.close() })
    await app.ready()
    for (const [i, route] of routes.entries()) {
      const statuses: number[] = []
      for (let n = 0; n < 4; n++) statuses.push((await app.inject(`/${i}`)).statusCode)
      t.same(statuses, [200, 200, 200, 429], route)
    }
  })
}
