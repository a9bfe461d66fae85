/**
 * Round trips per decision, counted by the servers themselves around N decisions made through a
 * whole Fastify app (`app.inject`):
 * - Redis: `MONITOR` gives the round trips (commands sent by clients; the commands a Lua script runs
 *   inside the server are tagged `lua` and are not round trips), and `INFO commandstats` deltas
 *   show every command executed, scripts' inner commands included.
 * - memcached: `stats` deltas (every command is a round trip there).
 * Each limiter gets a warm-up first (script loading, first connection), which is not counted.
 */
import Fastify from 'fastify'
import memjs from 'memjs'
import { Redis } from 'ioredis'
import * as traffik from '../../lib/index.js'
import type { Strategy } from '../../types/strategy.js'
import { redisCommandCounts } from '../support/redis-commands.js'

export interface RoundTrips {
  limiter: string
  backend: 'redis' | 'memcached'
  decisions: number
  /** How many of the decisions were admissions (the rest were rejections). */
  admitted: number
  /** Round trips (Redis: client commands seen by MONITOR; memcached: commands in `stats`). */
  commands: number
  /** Command names and counts executed during the measurement (Redis: incl. inside scripts). */
  detail: string
}

/** Counts the commands clients send (not those run inside scripts), from a MONITOR connection. */
async function redisMonitor (url: string): Promise<{ count: () => number, stop: () => void }> {
  const client = new Redis(url)
  const monitor = await client.monitor()
  let sent = 0
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const command = String(args[0]).toLowerCase()
    if (!source.startsWith('lua') && command !== 'info' && command !== 'monitor') sent++
  })
  return { count: () => sent, stop: () => { monitor.disconnect(); client.disconnect() } }
}

export const ALL_STRATEGIES = ['FixedWindow', 'SlidingWindowCounter', 'SlidingWindowLog', 'TokenBucket', 'TokenBucketWithDebt', 'LeakyBucket', 'LeakyBucketWithQueue', 'GCRA']

const MEMCACHED_COUNTERS = ['cmd_get', 'cmd_set', 'cmd_touch', 'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses', 'delete_hits', 'delete_misses']

async function memcachedCounts (client: memjs.Client): Promise<Map<string, number>> {
  const stats = await new Promise<Record<string, string>>((resolve, reject) => {
    client.stats((error, _server, values) => {
      if (error !== null || values === null) reject(error ?? new Error('no stats'))
      else resolve(values)
    })
  })
  return new Map(MEMCACHED_COUNTERS.map((name) => [name, Number(stats[name] ?? 0)]))
}

/** Deltas; the total is `__round_trips` when present (Redis), else the sum of the counters (memcached). */
function diff (before: Map<string, number>, after: Map<string, number>): { total: number, detail: string } {
  let total = 0
  const parts: string[] = []
  for (const [name, value] of after) {
    const delta = value - (before.get(name) ?? 0)
    if (delta <= 0 || name === '__round_trips') continue
    total += delta
    parts.push(`${name} ${delta}`)
  }
  const trips = after.get('__round_trips')
  if (trips !== undefined) total = trips - (before.get('__round_trips') ?? 0)
  return { total, detail: parts.join(', ') }
}

/** Redis counters: `__round_trips` from MONITOR plus every command's calls from commandstats. */
function redisCounts (client: Redis, monitor: { count: () => number }): () => Promise<Map<string, number>> {
  return async () => {
    // MONITOR lines arrive asynchronously: let the stream catch up before reading the count.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const counts = await redisCommandCounts(client)
    counts.set('__round_trips', monitor.count())
    return counts
  }
}

type AppFactory = () => Promise<{ inject: () => Promise<number>, close: () => Promise<void> }>

/** A Fastify app with one global limit (never reached) on one hot key. */
function traffikApp (strategyName: string, backendOf: () => traffik.ThrottleBackend): AppFactory {
  return async () => {
    const app = Fastify()
    const Strategy = (traffik as unknown as Record<string, new (options?: unknown) => Strategy>)[strategyName]!
    // Strategies that space requests evenly get a burst, so the measured decisions are admitted ones.
    let strategy: Strategy
    try { strategy = new Strategy({ burst: 10_000 }) } catch { strategy = new Strategy() }
    await app.register(traffik.traffik, {
      backend: backendOf(),
      // The fleet-overrides refresh reads the backend once per refreshMs whatever the traffic: a
      // cost per process, not per decision, so it is left out of a count per decision.
      overrides: false,
      global: { rate: { limit: 1_000_000, windowMs: 60_000 }, strategy, identifier: () => 'hot' }
    })
    app.get('/', async () => 'ok')
    await app.ready()
    return { inject: async () => (await app.inject('/')).statusCode, close: async () => { await app.close() } }
  }
}

async function countOver (factory: AppFactory, decisions: number, counts: () => Promise<Map<string, number>>): Promise<{ total: number, detail: string, admitted: number }> {
  const app = await factory()
  try {
    for (let i = 0; i < 5; i++) await app.inject() // warm-up: script load, connection
    const before = await counts()
    let admitted = 0
    for (let i = 0; i < decisions; i++) {
      const status = await app.inject()
      if (status === 200) admitted++
      else if (status !== 429) throw new Error(`round-trip count: unexpected status ${status}`)
    }
    const after = await counts()
    return { ...diff(before, after), admitted }
  } finally {
    await app.close()
  }
}

export async function measureRoundTrips (redisUrl: string, memcachedServers: string, decisions: number): Promise<RoundTrips[]> {
  const results: RoundTrips[] = []
  const redis = new Redis(redisUrl)
  const monitor = await redisMonitor(redisUrl)
  const redisStats = redisCounts(redis, monitor)
  const memcached = memjs.Client.create(memcachedServers, { logger: { log () {} } })
  try {
    for (const name of ALL_STRATEGIES) {
      const r = await countOver(traffikApp(name, () => new traffik.RedisBackend(redisUrl, { namespace: `rt-${name}` })), decisions, redisStats)
      results.push({ limiter: `fastify-traffik ${name}`, backend: 'redis', decisions, admitted: r.admitted, commands: r.total, detail: r.detail })
    }
    // A long generation refresh keeps the backend's once-a-second background read out of the count.
    for (const name of ALL_STRATEGIES) {
      const r = await countOver(traffikApp(name, () => new traffik.MemcachedBackend(memcachedServers, { namespace: `rt-${name}`, generationRefreshMs: 600_000 })), decisions, async () => await memcachedCounts(memcached))
      results.push({ limiter: `fastify-traffik ${name}`, backend: 'memcached', decisions, admitted: r.admitted, commands: r.total, detail: r.detail })
    }
    const frl = await countOver(async () => {
      const { default: rateLimit } = await import('@fastify/rate-limit')
      const client = new Redis(redisUrl)
      const app = Fastify()
      await app.register(rateLimit, { max: 1_000_000, timeWindow: 60_000, redis: client, nameSpace: 'rt-frl:', keyGenerator: () => 'hot' })
      app.get('/', async () => 'ok')
      await app.ready()
      return { inject: async () => (await app.inject('/')).statusCode, close: async () => { await app.close(); client.disconnect() } }
    }, decisions, redisStats)
    results.push({ limiter: '@fastify/rate-limit', backend: 'redis', decisions, admitted: frl.admitted, commands: frl.total, detail: frl.detail })
    const rlf = await import('rate-limiter-flexible')
    const rlfApp = (): AppFactory => async () => {
      const redisClient = new Redis(redisUrl)
      const limiter = new rlf.RateLimiterRedis({ storeClient: redisClient, points: 1_000_000, duration: 60, keyPrefix: 'rt-rlf' })
      const app = Fastify()
      app.addHook('onRequest', async (_request, reply) => {
        try { await limiter.consume('hot') } catch { await reply.code(429).send() }
      })
      app.get('/', async () => 'ok')
      await app.ready()
      return {
        inject: async () => (await app.inject('/')).statusCode,
        close: async () => { await app.close(); redisClient.disconnect() }
      }
    }
    const rlfRedis = await countOver(rlfApp(), decisions, redisStats)
    results.push({ limiter: 'rate-limiter-flexible', backend: 'redis', decisions, admitted: rlfRedis.admitted, commands: rlfRedis.total, detail: rlfRedis.detail })
  } finally {
    monitor.stop()
    redis.disconnect()
    memcached.close()
  }
  return results
}
