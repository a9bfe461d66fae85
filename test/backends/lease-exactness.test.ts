/**
 * Leases across processes: 1000 concurrent requests for one client spread over 4 Fastify
 * processes sharing Redis (and Memcached and ClusterBackend: leases live in the backend guard, so
 * every network backend has them), limit 100, `lease: { maxUnits: 10 }` (K <= 10 per process).
 * The bound of docs/leases.md: FixedWindow never admits more than the limit in a window (a lease
 * ends with its window); TokenBucket admits at most the limit plus the units leased and unused
 * (P x K = 40) over any span. Neither admits fewer than the limit less the units parked in the
 * processes: P x K = 40 for TokenBucket, P x 1.5 K = 60 for FixedWindow, whose lease may be
 * refilled ahead by half a lease more. With leases off the suites in redis-exactness / memcached-exactness admit
 * exactly the limit.
 */
import cluster from 'node:cluster'
import t from 'tap'
import { ClusterBackend } from '../../lib/index.js'
import { runBurst } from '../../scripts/support/multi-process.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

// This test process is the ClusterBackend primary (it holds the state) for the cluster workers.
const primary = ClusterBackend.attachPrimary()
t.teardown(async () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
  await primary.detach()
})

const PROCESSES = 4
const MAX_UNITS = 10
const LIMIT = 100
// The units a process may hold unspent: a FixedWindow lease is refilled ahead once half spent.
const parkedBound = (strategy: string): number => PROCESSES * (strategy === 'FixedWindow' ? 1.5 * MAX_UNITS : MAX_UNITS)

const backends: Array<['redis' | 'memcached' | 'ClusterBackend', string | undefined]> = [
  ['redis', await sharedRedisUrl()], ['memcached', await sharedMemcachedServers()], ['ClusterBackend', undefined]
]
for (const [kind, connection] of backends) {
  for (const strategy of ['FixedWindow', 'TokenBucket']) {
    t.test(`${strategy}: 1000 concurrent requests over ${PROCESSES} processes sharing ${kind}, with leases`, async (t) => {
      const result = await runBurst({
        backend: { kind, ...(connection === undefined ? {} : { connection }), namespace: uniqueNamespace('lease'), options: { timeoutMs: 10_000 } },
        strategy: { name: strategy },
        rate: `${LIMIT}/day`,
        lease: { maxUnits: MAX_UNITS }
      }, PROCESSES, 1000)
      t.comment(`${kind} ${strategy} with leases: ${result.allowed} allowed, ${result.rejected} rejected`)
      t.equal(result.other, 0, 'every answer is 200 or 429')
      t.equal(result.allowed + result.rejected, 1000)
      const over = strategy === 'FixedWindow' ? 0 : PROCESSES * MAX_UNITS
      const parked = parkedBound(strategy)
      t.ok(result.allowed <= LIMIT + over, `allowed ${result.allowed} <= ${LIMIT} + ${over}`)
      t.ok(result.allowed >= LIMIT - parked, `allowed ${result.allowed} >= ${LIMIT} - ${parked} (units parked in processes)`)
    })
  }
}
