/**
 * `node --import tsx scripts/bench/redis-profile.ts [decisions] [concurrency]`: the cost of one
 * Redis decision on both sides, without HTTP in the way. For each limiter, `concurrency` loops
 * decide on one hot key until `decisions` are made, and the run reports:
 * - Node CPU µs per decision (this process's `process.cpuUsage()`),
 * - Redis CPU µs per decision (`INFO cpu` used_cpu_user + used_cpu_sys deltas),
 * - Redis script µs per call (`INFO commandstats` usec of the script command, inner commands included),
 * - commands per decision (every command Redis executed, inner ones included).
 * Loads fastify-traffik from its build (run `node scripts/build.mjs` first), like the throughput
 * benchmark. Starts its own redis-server.
 */
import { createRequire } from 'node:module'
import { Redis } from 'ioredis'
import { startRedis } from '../support/services.js'

type Decide = () => Promise<unknown>
interface Limiter { name: string, setup: (url: string) => Promise<{ decide: Decide, close: () => Promise<void> }> }

const decisions = Number(process.argv[2] ?? 40_000)
const concurrency = Number(process.argv[3] ?? 50)
const require = createRequire(import.meta.url)

async function traffikLimiter (name: string, options: Record<string, unknown>, strategyName = 'FixedWindow'): Promise<Limiter> {
  const built: string = '../../dist/esm/lib/index.js'
  const traffik = await import(built) as typeof import('../../lib/index.js')
  const registry = traffik as unknown as Record<string, new (...args: unknown[]) => unknown>
  return {
    name,
    setup: async (url) => {
      const backend = new traffik.RedisBackend(url, { namespace: `profile${process.pid}`, ...options })
      await backend.initialize()
      const strategy = new registry[strategyName]!() as InstanceType<typeof traffik.FixedWindow>
      const ops = [{ strategy, key: 'GET:/:{hot}', limit: 1_000_000_000, windowMs: 60_000, cost: 1 }]
      return { decide: async () => await backend.evaluate(ops, 'hit'), close: async () => { await backend.close() } }
    }
  }
}

const fastifyRateLimit: Limiter = {
  name: '@fastify/rate-limit RedisStore',
  setup: async (url) => {
    const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as new (...args: unknown[]) => { incr: (key: string, cb: (error: Error | null) => void, windowMs: number, max: number) => void }
    const client = new Redis(url)
    const store = new RedisStore(false, false, client, 'frl-')
    const decide: Decide = async () => { await new Promise<void>((resolve, reject) => { store.incr('hot', (error) => { error === null ? resolve() : reject(error) }, 60_000, 1_000_000_000) }) }
    return { decide, close: async () => { client.disconnect() } }
  }
}

const rateLimiterFlexible: Limiter = {
  name: 'rate-limiter-flexible RateLimiterRedis',
  setup: async (url) => {
    const rlf = await import('rate-limiter-flexible')
    const client = new Redis(url)
    const limiter = new rlf.RateLimiterRedis({ storeClient: client, points: 1_000_000_000, duration: 60, keyPrefix: 'rlf' })
    return { decide: async () => await limiter.consume('hot'), close: async () => { client.disconnect() } }
  }
}

async function redisStats (client: Redis): Promise<{ cpu: number, calls: number, scriptUsec: number, scriptCalls: number }> {
  const text = await client.info('all')
  const user = Number(/used_cpu_user:([\d.]+)/.exec(text)![1])
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(text)![1])
  let calls = 0
  let scriptUsec = 0
  let scriptCalls = 0
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    if (match[1] === 'info') continue
    calls += Number(match[2])
    if (['evalsha', 'eval', 'fcall'].includes(match[1]!)) {
      scriptUsec += Number(match[3])
      scriptCalls += Number(match[2])
    }
  }
  return { cpu: (user + sys) * 1e6, calls, scriptUsec, scriptCalls }
}

async function run (limiter: Limiter, url: string, stats: Redis): Promise<string> {
  const { decide, close } = await limiter.setup(url)
  const loop = async (count: number): Promise<void> => { for (let i = 0; i < count; i++) await decide() }
  // Warm-up: JIT, script loading.
  await Promise.all(Array.from({ length: concurrency }, async () => { await loop(100) }))
  const before = await redisStats(stats)
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => { await loop(Math.ceil(decisions / concurrency)) }))
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  const after = await redisStats(stats)
  await close()
  const n = Math.ceil(decisions / concurrency) * concurrency
  const scriptCalls = after.scriptCalls - before.scriptCalls
  return `| ${limiter.name} | ${Math.round(n / elapsed * 1000)} | ${((cpu.user + cpu.system) / n).toFixed(1)} | ${((after.cpu - before.cpu) / n).toFixed(1)} | ${scriptCalls === 0 ? '—' : ((after.scriptUsec - before.scriptUsec) / scriptCalls).toFixed(2)} | ${((after.calls - before.calls - 1) / n).toFixed(2)} |`
}

async function main (): Promise<void> {
  const server = await startRedis()
  const url = `redis://${server.host}:${server.port}`
  const stats = new Redis(url)
  const only = process.env.PROFILE_ONLY
  try {
    const limiters = [
      await traffikLimiter('fastify-traffik RedisBackend FixedWindow', {}),
      await traffikLimiter('fastify-traffik RedisBackend FixedWindow, coalesceWrites off', { coalesceWrites: false }),
      await traffikLimiter('fastify-traffik RedisBackend FixedWindow, auto-pipelining', { clientOptions: { enableAutoPipelining: true } }),
      fastifyRateLimit,
      rateLimiterFlexible
    ].filter((l) => only === undefined || only.split(',').some((part) => l.name.includes(part)))
    console.log(`${decisions} decisions on one key, ${concurrency} concurrent callers`)
    console.log('| limiter | decisions/s | Node CPU µs/decision | Redis CPU µs/decision | script µs/call (commandstats) | commands/decision |')
    console.log('|---|---|---|---|---|---|')
    for (const limiter of limiters) console.log(await run(limiter, url, stats))
  } finally {
    stats.disconnect()
    await server.stop()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
