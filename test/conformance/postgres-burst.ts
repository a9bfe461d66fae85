/**
 * The PostgreSQL custom backend is exact across processes: 1000 concurrent requests for one key,
 * spread over 4 Fastify processes sharing the database, admit exactly what one in-memory process
 * admits. Each postgres-burst-*.test.ts file runs two strategies (every file stays well under a
 * minute on a busy machine).
 *
 * The burst queues 1000 decisions on one key; on a small, busy machine the last of them waits
 * seconds. These tests are about exactness, not latency, so the deadline is raised out of the way
 * (with the default 1 s a late request is answered by its timeout and `onError` instead).
 */
import t from 'tap'
import { runBurst } from '../../scripts/support/multi-process.js'
import { startPostgres, uniqueNamespace } from '../../scripts/support/services.js'

export async function postgresBurstTests (strategies: readonly string[]): Promise<void> {
  const server = await startPostgres()
  t.teardown(async () => { await server.stop() })
  for (const name of strategies) {
    t.test(`${name}: 4 processes, 1000 concurrent requests, 100/day, on PostgreSQL`, async (t) => {
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
}
