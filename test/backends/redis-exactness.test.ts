/**
 * 4 processes sharing one Redis admit exactly what one in-memory process admits (one EVALSHA per
 * decision, no locks): every strategy through ioredis, and through each other client library a
 * representative subset (a window, a bucket with state, the queue that holds requests, GCRA), so
 * the suite stays quick: the scripts are the same for every library, only the client differs.
 * The defaults coalesce the scripts of one turn of the event loop into one write (coalesceWrites).
 * Every strategy again with ioredis' auto-pipelining on, and with the block cache on.
 */
import { exactnessSuite } from '../helpers/exactness-suite.js'
import { sharedRedisUrl } from '../../scripts/support/services.js'
import { redisDrivers } from '../helpers/redis-drivers.js'

const url = await sharedRedisUrl()
exactnessSuite('redis', url, { label: 'redis (ioredis, coalesceWrites by default)' })
// Auto-pipelining flushes the scripts of concurrent decisions together: each is still one script.
exactnessSuite('redis', url, { label: 'redis (ioredis, autoPipelining)', backendOptions: { autoPipelining: true } })
// The block cache answers only what Redis rejected, until the wait is over: still exact.
exactnessSuite('redis', url, { label: 'redis (ioredis, blockCache)', backendOptions: { blockCache: true } })
for (const driver of redisDrivers.filter((name) => name !== 'ioredis')) {
  exactnessSuite('redis', url, {
    label: `redis (${driver})`,
    strategies: ['FixedWindow', 'TokenBucketWithDebt', 'LeakyBucketWithQueue', 'GCRA'],
    backendOptions: { driver }
  })
}
