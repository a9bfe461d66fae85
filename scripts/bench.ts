/**
 * `npm run bench [-- --quick] [-- --only=<substring>[,<substring>...]]`: the throughput benchmarks.
 *
 * Each scenario's server runs in its own process; this process is the load generator (autocannon).
 * Scenarios are run in interleaved rounds (A B C, A B C, ...) and reported as medians with min–max.
 * Besides requests/second and latency, the server's CPU time per request is measured (from its own
 * process.cpuUsage()), because on a small machine the load generator can cap the request rate.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import type { Scenario } from './bench/scenarios.js'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length)
const rounds = quick ? 2 : 5
const durationSeconds = quick ? 3 : 6
const connections = 50
const serverPath = fileURLToPath(new URL('./bench/server.ts', import.meta.url))

export interface Sample { rps: number, p50: number, p99: number, cpuMicrosPerRequest: number, requests: number, non2xx: number }

export async function measure (scenario: Scenario): Promise<Sample> {
  const child = fork(serverPath, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_SCENARIO: JSON.stringify(scenario), NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  try {
    const port = await nextMessage<{ port: number }>(child, 'listening')
    const url = `http://127.0.0.1:${port.port}/`
    await load(url, scenario, 1) // warm-up: JIT, connections, first keys
    const before = await nextCpu(child)
    const result = await load(url, scenario, durationSeconds)
    const after = await nextCpu(child)
    const requests = result.requests.total
    return {
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      cpuMicrosPerRequest: (after - before) / Math.max(1, requests),
      requests,
      non2xx: result.non2xx
    }
  } finally {
    child.send({ type: 'stop' })
    await new Promise((resolve) => child.once('exit', resolve))
  }
}

async function load (url: string, scenario: Scenario, duration: number): Promise<autocannon.Result> {
  let next = 0
  return await autocannon({
    url,
    connections,
    duration,
    requests: [{
      setupRequest: (request) => {
        const client = scenario.keys === 'hot' ? 'hot' : `c${next++ % 10_000}`
        return { ...request, headers: { ...request.headers, 'x-client': client } }
      }
    }]
  })
}

async function nextMessage<T> (child: ChildProcess, type: string): Promise<T> {
  return await new Promise((resolve, reject) => {
    const onMessage = (message: { type: string }): void => {
      if (message.type !== type) return
      child.off('message', onMessage)
      resolve(message as T)
    }
    child.on('message', onMessage)
    child.once('exit', (code) => { reject(new Error(`server exited with ${code}`)) })
  })
}

async function nextCpu (child: ChildProcess): Promise<number> {
  const reply = nextMessage<{ micros: number }>(child, 'cpu')
  child.send({ type: 'cpu' })
  return (await reply).micros
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const memoryScenarios: Scenario[] = [
  { name: 'bare Fastify', limiter: 'bare', backend: 'memory', keys: 'hot' },
  { name: 'floor: empty preHandler', limiter: 'empty-hook', backend: 'memory', keys: 'hot' },
  { name: 'floor: empty preHandler + 3 headers', limiter: 'empty-hook-headers', backend: 'memory', keys: 'hot' },
  { name: 'fastify-traffik memory FixedWindow hot', limiter: 'traffik', backend: 'memory', keys: 'hot' },
  { name: 'fastify-traffik memory FixedWindow 10k keys', limiter: 'traffik', backend: 'memory', keys: 'rotating' },
  { name: '@fastify/rate-limit memory hot', limiter: 'fastify-rate-limit', backend: 'memory', keys: 'hot' },
  { name: '@fastify/rate-limit memory 10k keys', limiter: 'fastify-rate-limit', backend: 'memory', keys: 'rotating' }
]

/**
 * Dynamic backend resolution (resolveBackend + dynamicBackend) against the same backend pinned:
 * DESIGN §4 asks for < 2 % throughput. Redis pairs join when REDIS_URL is set.
 */
function dynamicScenarios (): Scenario[] {
  const pairs: Scenario[] = [
    { name: 'fastify-traffik memory FixedWindow pinned', limiter: 'traffik', backend: 'memory', keys: 'hot' },
    { name: 'fastify-traffik memory FixedWindow dynamic', limiter: 'traffik', backend: 'memory', keys: 'hot', dynamic: true }
  ]
  const redisUrl = process.env.REDIS_URL
  if (redisUrl !== undefined && redisUrl !== '') {
    pairs.push(
      { name: 'fastify-traffik redis FixedWindow pinned', limiter: 'traffik', backend: 'redis', keys: 'hot', connection: redisUrl },
      { name: 'fastify-traffik redis FixedWindow dynamic', limiter: 'traffik', backend: 'redis', keys: 'hot', connection: redisUrl, dynamic: true }
    )
  }
  return pairs
}

/** `--only=a,b` keeps the scenarios whose name contains any of the comma-separated parts. */
function selected (scenario: Scenario): boolean {
  return only === undefined || only.split(',').some((part) => scenario.name.includes(part))
}

/** The dynamic-vs-pinned lines: the throughput ratio and the added server CPU time per request. */
function printDynamicOverhead (samples: Map<string, Sample[]>): void {
  for (const backend of ['memory', 'redis']) {
    const pinned = samples.get(`fastify-traffik ${backend} FixedWindow pinned`)
    const dynamic = samples.get(`fastify-traffik ${backend} FixedWindow dynamic`)
    if (pinned === undefined || dynamic === undefined) continue
    // Each round runs the pair back to back, so per-round ratios cancel most of a noisy machine's drift.
    const ratio = median(dynamic.map((s, i) => s.rps / pinned[i]!.rps))
    const cpu = median(dynamic.map((s, i) => s.cpuMicrosPerRequest - pinned[i]!.cpuMicrosPerRequest))
    console.log(`dynamic vs pinned (${backend}), median of per-round ratios: ${(ratio * 100).toFixed(1)} % of the pinned req/s (${((1 - ratio) * 100).toFixed(1)} % cost), ${cpu >= 0 ? '+' : ''}${cpu.toFixed(2)} µs server CPU per request`)
  }
}

async function main (): Promise<void> {
  const scenarios = [...memoryScenarios, ...dynamicScenarios()].filter(selected)
  const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (const scenario of scenarios) {
      const sample = await measure(scenario)
      samples.get(scenario.name)!.push(sample)
      console.error(`round ${round + 1}/${rounds} ${scenario.name}: ${Math.round(sample.rps)} req/s, ${sample.cpuMicrosPerRequest.toFixed(1)} µs CPU/req`)
    }
  }
  const bare = samples.get('bare Fastify')
  const bareRps = bare === undefined ? NaN : median(bare.map((s) => s.rps))
  const bareCpu = bare === undefined ? NaN : median(bare.map((s) => s.cpuMicrosPerRequest))
  console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; ${rounds} rounds × ${durationSeconds} s, ${connections} connections`)
  console.log('| scenario | req/s median (min–max) | × bare | p50 ms | p99 ms | server CPU µs/req | added CPU µs/req |')
  console.log('|---|---|---|---|---|---|---|')
  for (const [name, list] of samples) {
    const rps = list.map((s) => s.rps)
    const cpu = median(list.map((s) => s.cpuMicrosPerRequest))
    console.log(`| ${name} | ${Math.round(median(rps))} (${Math.round(Math.min(...rps))}–${Math.round(Math.max(...rps))}) | ${(median(rps) / bareRps).toFixed(3)} | ${median(list.map((s) => s.p50))} | ${median(list.map((s) => s.p99))} | ${cpu.toFixed(1)} | ${(cpu - bareCpu).toFixed(1)} |`)
  }
  printDynamicOverhead(samples)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}
