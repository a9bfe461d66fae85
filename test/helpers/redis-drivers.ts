/**
 * The Redis client libraries RedisBackend has an adapter for, as the tests run them: each makes
 * its own client from a URL (the `driver` option), so one table drives every suite.
 */
import { Logger } from '@valkey/valkey-glide'
import type { RedisDriverName } from '../../lib/index.js'

// GLIDE's native layer logs every failed connection attempt at warn to the console; the tests provoke many.
Logger.setLoggerConfig('off')

/** Every adapter, in the order the docs list them. */
export const redisDrivers: readonly RedisDriverName[] = ['ioredis', 'iovalkey', 'node-redis', 'valkey-glide']

/** Adapters whose client library speaks Redis Cluster. */
export const clusterDrivers: readonly RedisDriverName[] = ['ioredis', 'iovalkey', 'node-redis', 'valkey-glide']
