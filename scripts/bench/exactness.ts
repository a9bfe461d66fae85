/**
 * Exactness across processes: 1000 concurrent requests for one identifier spread over 4 Fastify
 * processes that share one Redis or memcached, limit 100 (per hour), compared with what one in-memory process
 * admits for the same burst. Reuses the multi-process helper the test suite also uses.
 */
import { runBurst } from '../support/multi-process.js'

/**
 * 100 per hour: a limit of 100 as the bar says, with a window long enough that the refilling
 * strategies (TokenBucket, GCRA) cannot legitimately earn one more unit while a burst is in flight
 * on a loaded machine (at 100/min a token comes back every 600 ms).
 */
export const RATE = '100/hour'

export interface Exactness {
  backend: 'redis' | 'memcached'
  strategy: string
  allowed: number
  rejected: number
  other: number
  expected: number
}

export async function measureExactness (redisUrl: string, memcachedServers: string, strategies: string[]): Promise<Exactness[]> {
  const results: Exactness[] = []
  for (const backend of ['redis', 'memcached'] as const) {
    for (const strategy of strategies) {
      const connection = backend === 'redis' ? redisUrl : memcachedServers
      const namespace = `exact-${strategy}-${Date.now().toString(36)}`
      const result = await runBurst({ backend: { kind: backend, connection, namespace }, strategy: { name: strategy }, rate: RATE }, 4, 1000)
      results.push({ backend, strategy, ...result })
    }
  }
  return results
}
