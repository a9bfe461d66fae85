/**
 * `npx tsx scripts/bench/override-cost.ts`: what reading the fleet's overrides inside the Redis
 * decision script (`overrides: { inDecision: true }`) costs with no override set. The same hot
 * FixedWindow decision, with and without the override lookup, in alternating rounds on a private
 * redis-server: the server's µs per script call (INFO commandstats) and this process's CPU per decision.
 */
import { Redis } from 'ioredis'
import { FixedWindow, RedisBackend } from '../../lib/index.js'
import { startRedis } from '../support/services.js'
const server = await startRedis()
const url = `redis://${server.host}:${server.port}`
const backend = new RedisBackend(url, { namespace: 'cost' })
await backend.initialize()
const admin = new Redis(url)
const strategy = new FixedWindow()
const plain = { strategy, key: 'u:{hot}', limit: 1e9, windowMs: 60000, cost: 1 }
const lookup = { key: 'traffik:overrides:fields', throttleField: 't:u', identifierPrefix: 'i:', fixedCost: false }
const withLookup = { ...plain, overrides: lookup }
const N = 5000
const stat = async (): Promise<[number, number]> => {
  const match = /^cmdstat_evalsha:calls=(\d+),usec=(\d+)/m.exec(await admin.info('commandstats'))
  return match === null ? [0, 0] : [Number(match[1]), Number(match[2])]
}
const results: Record<string, { usec: number, calls: number, cpu: number }> = { plain: { usec: 0, calls: 0, cpu: 0 }, lookup: { usec: 0, calls: 0, cpu: 0 } }
for (const op of [plain, withLookup]) for (let i = 0; i < 500; i++) await backend.evaluate([op], 'hit')
for (let round = 0; round < 6; round++) {
  for (const [name, op] of [['plain', plain], ['lookup', withLookup]] as const) {
    await admin.config('RESETSTAT')
    const cpu = process.cpuUsage()
    for (let i = 0; i < N; i++) await backend.evaluate([op], 'hit')
    const used = process.cpuUsage(cpu)
    const [calls, usec] = await stat()
    results[name]!.usec += usec; results[name]!.calls += calls; results[name]!.cpu += used.user + used.system
  }
}
for (const [name, r] of Object.entries(results)) console.log(name, 'redis usec/call', (r.usec / r.calls).toFixed(3), 'node cpu usec/decision', (r.cpu / r.calls).toFixed(2))
await backend.close(); admin.disconnect(); await server.stop()
