/**
 * What a Redis server executed, counted by the server itself (`INFO commandstats`, the inner
 * commands of scripts included): how the benchmarks and the tests measure round trips and
 * commands per decision. Count on a server of your own (`privateRedis`): a shared one also
 * counts every other client's commands.
 */
import { Redis } from 'ioredis'
import { startRedis } from './services.js'

/** Calls per command name (`evalsha`, `get`, `config|resetstat`, …), the INFO calls that read them left out. */
export async function redisCommandCounts (client: Redis): Promise<Map<string, number>> {
  const text = await client.info('commandstats')
  const counts = new Map<string, number>()
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info') counts.set(match[1]!, Number(match[2]))
  }
  return counts
}

/** Every command executed so far, INFO left out. */
export async function redisCommandTotal (client: Redis): Promise<number> {
  let total = 0
  for (const calls of (await redisCommandCounts(client)).values()) total += calls
  return total
}

/** Script calls executed so far (EVALSHA and EVAL). */
export async function redisScriptCalls (client: Redis): Promise<number> {
  const counts = await redisCommandCounts(client)
  return (counts.get('evalsha') ?? 0) + (counts.get('eval') ?? 0)
}

/** A redis-server of the caller's own, its URL, and a client (`probe`) to read its stats; `stop()` closes both. */
export async function privateRedis (): Promise<{ url: string, probe: Redis, stop: () => Promise<void> }> {
  const server = await startRedis()
  const url = `redis://${server.host}:${server.port}`
  const probe = new Redis(url)
  return {
    url,
    probe,
    stop: async () => {
      probe.disconnect()
      await server.stop()
    }
  }
}
