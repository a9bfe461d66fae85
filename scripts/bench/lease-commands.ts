/**
 * Redis commands per decision on a hot key, leases off and on (the throttle option `lease` with
 * its defaults): counted by the server (`INFO commandstats`, scripts' inner commands included),
 * over `requests` admitted requests through a whole Fastify app (`app.inject`, one at a time).
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import * as traffik from '../../lib/index.js'
import { redisCommandTotal } from '../support/redis-commands.js'

export interface LeaseCommands { lease: boolean, decisions: number, commands: number }

export async function measureLeaseCommands (url: string, requests: number): Promise<LeaseCommands[]> {
  const stats = new Redis(url)
  const results: LeaseCommands[] = []
  try {
    for (const lease of [false, true]) {
      const backend = new traffik.RedisBackend(url, { namespace: `lease${process.pid}${String(lease)}` })
      const app = Fastify()
      // overrides: false: the fleet-overrides refresh reads the backend once a second per process, not per decision.
      await app.register(traffik.traffik, { backend, overrides: false, global: { rate: '1000000/min', identifier: () => 'hot', lease } })
      app.get('/', async () => ({ ok: true }))
      for (let i = 0; i < 10; i++) await app.inject('/')
      const before = await redisCommandTotal(stats)
      let decisions = 0
      for (let i = 0; i < requests; i++) if ((await app.inject('/')).statusCode === 200) decisions++
      results.push({ lease, decisions, commands: await redisCommandTotal(stats) - before })
      await backend.reset()
      await app.close()
    }
  } finally {
    stats.disconnect()
  }
  return results
}
