/**
 * Exactness across processes: 1000 concurrent requests for one client, spread over 4 Fastify
 * processes that share one memcached, are admitted exactly as one in-memory process admits them,
 * for every strategy the package exports (exactly 100 for the windows and TokenBucket). Counter
 * strategies go through atomic incr, the others through CAS. The strategies are split over two
 * files (this one takes those at even positions) so each file stays short.
 */
import t from 'tap'
import * as traffikModule from '../../lib/index.js'
import { runBurst } from '../helpers/multi-process.js'
import { sharedMemcachedServers, uniqueNamespace } from '../helpers/services.js'

const PART = 0

const strategyNames = Object.entries(traffikModule)
  .filter(([, value]) => typeof value === 'function' && typeof (value as { prototype?: { step?: unknown } }).prototype?.step === 'function')
  .map(([name]) => name)
  .sort()
const mine = strategyNames.filter((_, i) => i % 2 === PART)
const exactlyTheLimit = new Set(['FixedWindow', 'SlidingWindowCounter', 'SlidingWindowLog', 'TokenBucket'])
const servers = await sharedMemcachedServers()

t.ok(strategyNames.includes('FixedWindow') && mine.length > 0, `strategies here: ${mine.join(', ')} (of ${strategyNames.join(', ')})`)

// These tests are about exactness, not latency: 250 concurrent calls per process on a small, busy
// machine can outlast the default 250 ms deadline, and a late answer would then be decided by
// onError instead of by the backend. The deadline is raised out of the way.
const BURST_TIMEOUT_MS = 10_000

for (const name of mine) {
  t.test(`${name}: 1000 concurrent requests over 4 processes sharing memcached`, async (t) => {
    const namespace = uniqueNamespace('mex')
    const started = Date.now()
    const result = await runBurst({ backend: { kind: 'memcached', connection: servers, namespace, options: { timeoutMs: BURST_TIMEOUT_MS } }, strategy: { name }, rate: '100/day' }, 4, 1000)
    t.comment(`${name}: ${result.allowed} allowed, ${result.rejected} rejected, ${result.other} other in ${Date.now() - started} ms`)
    t.equal(result.other, 0, 'every answer is 200 or 429')
    t.equal(result.allowed, result.expected, `allowed ${result.allowed}, one in-memory process admits ${result.expected}`)
    t.equal(result.allowed + result.rejected, 1000)
    if (exactlyTheLimit.has(name)) t.equal(result.allowed, 100, 'exactly the limit')
  })
}
