/**
 * The Redis client libraries RedisBackend has an adapter for, as the tests run them: each makes
 * its own client from a URL (the `driver` option), so one table drives every suite.
 */
import type { RedisDriverName } from '../../lib/index.js'

/** Every adapter, in the order the docs list them. */
export const redisDrivers: readonly RedisDriverName[] = ['ioredis', 'iovalkey', 'node-redis']

/** Adapters whose client library speaks Redis Cluster. */
export const clusterDrivers: readonly RedisDriverName[] = ['ioredis', 'iovalkey', 'node-redis']
