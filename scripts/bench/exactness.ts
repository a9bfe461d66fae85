/**
 * Exactness across processes: 1000 concurrent requests for one identifier spread over 4 Fastify
 * processes that share one Redis, memcached or ClusterBackend, limit 100 (per hour), compared with
 * what one in-memory process admits for the same burst. Every strategy runs with the network
 * backends' speed options on (Redis coalesces writes by default; the block cache on for all
 * three): they must stay exact. Leases run on FixedWindow and TokenBucket and must stay within
 * the bound of docs/leases.md. Reuses the multi-process helper the test suite also uses.
 */
import cluster from 'node:cluster'
import { ClusterBackend } from '../../lib/index.js'
import { runBurst } from '../support/multi-process.js'

/**
 * 100 per hour: a limit of 100 as the bar says, with a window long enough that the refilling
 * strategies (TokenBucket, GCRA) cannot legitimately earn one more unit while a burst is in flight
 * on a loaded machine (at 100/min a token comes back every 600 ms).
 */
export const RATE = '100/hour'
const LIMIT = 100
const PROCESSES = 4
const REQUESTS = 1000
/** The leases' `maxUnits` (K) in the lease rows. */
export const LEASE_UNITS = 10

export type ExactnessBackend = 'redis' | 'memcached' | 'ClusterBackend'

export interface Exactness {
  backend: ExactnessBackend
  /** The backend and throttle options of the row, as shown on the page. */
  options: string
  strategy: string
  allowed: number
  rejected: number
  other: number
  /** What one in-memory process admits for the same burst. */
  expected: number
  /** The admitted counts the row must fall within: [expected, expected] unless leases are on. */
  bounds: readonly [number, number]
}

/**
 * docs/leases.md: FixedWindow never over-admits and parks at most 1.5 K per process (a lease is
 * refilled ahead once half spent); TokenBucket over- and under-admits by at most P x K.
 */
function leaseBounds (strategy: string): readonly [number, number] {
  return strategy === 'FixedWindow'
    ? [LIMIT - PROCESSES * 1.5 * LEASE_UNITS, LIMIT]
    : [LIMIT - PROCESSES * LEASE_UNITS, LIMIT + PROCESSES * LEASE_UNITS]
}

export function withinBounds (row: Exactness): boolean {
  return row.other === 0 && row.allowed >= row.bounds[0] && row.allowed <= row.bounds[1]
}

export async function measureExactness (redisUrl: string, memcachedServers: string, strategies: readonly string[]): Promise<Exactness[]> {
  const results: Exactness[] = []
  // ClusterBackend's processes are node:cluster workers of this process, which holds the state.
  const primary = ClusterBackend.attachPrimary()
  const connections: Record<ExactnessBackend, string | undefined> = { redis: redisUrl, memcached: memcachedServers, ClusterBackend: undefined }
  try {
    for (const backend of ['redis', 'memcached', 'ClusterBackend'] as const) {
      const connection = connections[backend]
      const fast = backend === 'redis' ? 'coalesceWrites, blockCache' : 'blockCache'
      const runs = [
        ...strategies.map((strategy) => ({ strategy, options: fast, lease: undefined })),
        ...['FixedWindow', 'TokenBucket'].map((strategy) => ({ strategy, options: `lease: { maxUnits: ${LEASE_UNITS} }`, lease: { maxUnits: LEASE_UNITS } }))
      ]
      for (const { strategy, options, lease } of runs) {
        const namespace = `exact-${strategy}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`
        const result = await runBurst({
          backend: { kind: backend, ...(connection === undefined ? {} : { connection }), namespace, options: { timeoutMs: 10_000, ...(lease === undefined ? { blockCache: true } : {}) } },
          strategy: { name: strategy },
          rate: RATE,
          ...(lease === undefined ? {} : { lease })
        }, PROCESSES, REQUESTS)
        results.push({ backend, options, strategy, ...result, bounds: lease === undefined ? [result.expected, result.expected] : leaseBounds(strategy) })
      }
    }
  } finally {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
    await primary.detach()
  }
  return results
}
