/**
 * A flood of one blocked client on Redis, with and without the block cache: Redis commands per
 * rejected request, counted by the server (`INFO commandstats`, scripts' inner commands included),
 * over `requests` requests through a whole Fastify app (`app.inject`) after the client used its
 * limit.
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import * as traffik from '../../lib/index.js'
import { redisCommandTotal } from '../support/redis-commands.js'

export interface Flood { blockCache: boolean, rejected: number, commands: number }

export async function measureFlood (url: string, requests: number): Promise<Flood[]> {
  const stats = new Redis(url)
  const results: Flood[] = []
  try {
    for (const blockCache of [false, true]) {
      const backend = new traffik.RedisBackend(url, { namespace: `flood${process.pid}${String(blockCache)}`, blockCache })
      const app = Fastify()
      await app.register(traffik.traffik, { backend, global: { rate: '10/hour', identifier: () => 'flooder' } })
      app.get('/', async () => ({ ok: true }))
      for (let i = 0; i < 10; i++) await app.inject('/')
      const before = await redisCommandTotal(stats)
      let rejected = 0
      for (let i = 0; i < requests; i++) if ((await app.inject('/')).statusCode === 429) rejected++
      results.push({ blockCache, rejected, commands: await redisCommandTotal(stats) - before })
      await backend.reset()
      await app.close()
    }
  } finally {
    stats.disconnect()
  }
  return results
}
