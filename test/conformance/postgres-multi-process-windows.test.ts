/**
 * The PostgreSQL custom backend is exact across processes: 1000 concurrent requests for one key,
 * spread over 4 Fastify processes sharing the database, admit exactly what one in-memory process
 * admits, for every strategy.
 *
 * The burst queues 1000 decisions on one key; on a small, busy machine the last of them waits
 * seconds. This test is about exactness, not latency, so the deadline is raised out of the way
 * (with the default 1 s a late request is answered by its timeout and `onError` instead).
 */
import t from 'tap'
import { runBurst } from '../helpers/multi-process.js'
import { startPostgres, uniqueNamespace } from '../helpers/services.js'

const server = await startPostgres()
t.teardown(async () => { await server.stop() })

// The other four strategies: postgres-multi-process-buckets.test.ts (two files keep each under a minute).
const strategies = ['FixedWindow', 'SlidingWindowCounter', 'SlidingWindowLog', 'TokenBucket']

for (const name of strategies) {
  t.test(`${name}: 4 processes, 1000 concurrent requests, 100/day`, async (t) => {
    const result = await runBurst({
      backend: { kind: 'postgres', connection: server.url, namespace: uniqueNamespace('pg'), options: { timeoutMs: 60_000 } },
      strategy: { name },
      rate: '100/day'
    }, 4, 1000)
    t.equal(result.other, 0, 'only 200 and 429 answers')
    t.equal(result.allowed, result.expected, `allowed ${result.allowed} === expected ${result.expected}`)
    t.equal(result.allowed + result.rejected, 1000)
  })
}
