/**
 * A flood of one blocked client on Redis, with and without the block cache: Redis commands per
 * rejected request, counted by the server (`INFO commandstats`, scripts' inner commands included),
 * over `requests` requests through a whole Fastify app (`app.inject`) after the client used its
 * limit.
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import * as traffik from '../../lib/index.js'

export interface Flood { blockCache: boolean, rejected: number, commands: number }

async function commandsSoFar (client: Redis): Promise<number> {
  const text = await client.info('commandstats')
  let calls = 0
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (match[1] !== 'info') calls += Number(match[2])
  return calls
}

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
      const before = await commandsSoFar(stats)
      let rejected = 0
      for (let i = 0; i < requests; i++) if ((await app.inject('/')).statusCode === 429) rejected++
      results.push({ blockCache, rejected, commands: await commandsSoFar(stats) - before })
      await backend.reset()
      await app.close()
    }
  } finally {
    stats.disconnect()
  }
  return results
}
