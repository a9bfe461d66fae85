/**
 * Exactness across processes for one shared backend: for every strategy the package exports but
 * Concurrency (scripts/support/strategy-names.ts), 1000 concurrent requests for one client, spread
 * over 4 Fastify processes, are admitted exactly as one in-memory process admits them (exactly 100 for the windows and TokenBucket).
 */
import t from 'tap'
import { runBurst } from '../../scripts/support/multi-process.js'
import { burstStrategyNames } from '../../scripts/support/strategy-names.js'
import { uniqueNamespace } from '../../scripts/support/services.js'

const exactlyTheLimit = new Set(['FixedWindow', 'SlidingWindowCounter', 'SlidingWindowLog', 'TokenBucket', 'CalendarQuota'])

// These tests are about exactness, not latency: 250 concurrent calls per process on a small, busy
// machine can outlast the default 250 ms deadline, and a late answer would then be decided by
// onError instead of by the backend. The deadline is raised out of the way.
const BURST_TIMEOUT_MS = 10_000

export function exactnessSuite (kind: 'redis' | 'memcached' | 'ClusterBackend', connection: string | undefined, options: { strategies?: readonly string[], backendOptions?: Record<string, unknown>, label?: string } = {}): void {
  const { strategies = burstStrategyNames, backendOptions = {}, label = kind } = options
  t.ok(exactlyTheLimit.size > 0 && burstStrategyNames.includes('FixedWindow'), `strategies: ${burstStrategyNames.join(', ')}`)
  for (const name of strategies) {
    t.test(`${name}: 1000 concurrent requests over 4 processes sharing ${label}`, async (t) => {
      const started = Date.now()
      const result = await runBurst({
        backend: { kind, ...(connection === undefined ? {} : { connection }), namespace: uniqueNamespace('ex'), options: { timeoutMs: BURST_TIMEOUT_MS, ...backendOptions } },
        strategy: { name },
        rate: '100/day'
      }, 4, 1000)
      t.comment(`${name}: ${result.allowed} allowed, ${result.rejected} rejected, ${result.other} other in ${Date.now() - started} ms`)
      t.equal(result.other, 0, 'every answer is 200 or 429')
      t.equal(result.allowed, result.expected, `allowed ${result.allowed}, one in-memory process admits ${result.expected}`)
      t.equal(result.allowed + result.rejected, 1000)
      if (exactlyTheLimit.has(name)) t.equal(result.allowed, 100, 'exactly the limit')
    })
  }
}
