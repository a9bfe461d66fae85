/**
 * `npm run bench [-- --quick] [-- --only=<substring>[,<substring>...]]`: the benchmarks behind the
 * bars of the design (throughput, CPU time, round trips, exactness, memory, dynamic resolution).
 *
 * Starts its own redis-server and memcached on loopback. Each throughput scenario's server runs in
 * its own process, started once and kept for every round; this process is the load generator
 * (autocannon). Scenarios are run in interleaved rounds (A B C, A B C, ...) and reported as medians
 * with min–max. Besides requests/second and latency, the server's CPU time per request is measured
 * (from its own process.cpuUsage()), because on a small, shared machine the load generator and other
 * processes cap and disturb the request rate; CPU time per request is much less sensitive to that.
 *
 * A full run writes docs/benchmarks.md and docs/benchmarks.svg (a run with --only writes nothing).
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import autocannon from 'autocannon'
import type { Scenario } from './bench/scenarios.js'
import { renderChart } from './bench/chart.js'
import { LEASE_UNITS, measureExactness, RATE as EXACTNESS_RATE, withinBounds, type Exactness } from './bench/exactness.js'
import { burstStrategyNames } from './support/strategy-names.js'
import { measureRoundTrips, type RoundTrips } from './bench/round-trips.js'
import { measureFlood, type Flood } from './bench/block-cache-flood.js'
import { measureLeaseCommands, type LeaseCommands } from './bench/lease-commands.js'
import { startMemcached, startRedis } from './support/services.js'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length)
const rounds = quick ? 2 : 3
const durationSeconds = quick ? 1 : 5
const connections = 50
const serverPath = fileURLToPath(new URL('./bench/server.ts', import.meta.url))
const root = fileURLToPath(new URL('..', import.meta.url))

export interface Sample { rps: number, p50: number, p99: number, cpuMicrosPerRequest: number, requests: number, non2xx: number }

interface RunningScenario { scenario: Scenario, child: ChildProcess, url: string, warmed: boolean }

async function startServer (scenario: Scenario): Promise<RunningScenario> {
  const child = fork(serverPath, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_SCENARIO: JSON.stringify(scenario), NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const port = await nextMessage<{ port: number }>(child, 'listening')
  return { scenario, child, url: `http://127.0.0.1:${port.port}/`, warmed: false }
}

async function stopServer (running: RunningScenario): Promise<void> {
  if (running.child.exitCode !== null) return
  const exited = new Promise((resolve) => running.child.once('exit', resolve))
  running.child.send({ type: 'stop' })
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

export async function measure (running: RunningScenario): Promise<Sample> {
  // Warm-up: JIT, connections, first keys; longer the first time a server is loaded.
  await load(running.url, running.scenario, running.warmed || quick ? 0.5 : 1)
  running.warmed = true
  const before = await nextCpu(running.child)
  const result = await load(running.url, running.scenario, durationSeconds)
  const after = await nextCpu(running.child)
  const requests = result.requests.total
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMicrosPerRequest: (after - before) / Math.max(1, requests),
    requests,
    non2xx: result.non2xx
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
    const onExit = (code: number | null): void => { reject(new Error(`server exited with ${code}`)) }
    const onMessage = (message: { type: string }): void => {
      if (message.type !== type) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(message as T)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
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

const BARE = 'bare Fastify'
const T = 'fastify-traffik'
const FRL = '@fastify/rate-limit'
const RLF = 'rate-limiter-flexible'

/** The client libraries of RedisBackend, side by side in one table; ioredis (the default) first. */
const REDIS_CLIENTS = ['ioredis', 'iovalkey', 'node-redis', 'valkey-glide'] as const
const CLIENT_PACKAGES: Record<typeof REDIS_CLIENTS[number], string> = { ioredis: 'ioredis', iovalkey: 'iovalkey', 'node-redis': 'redis', 'valkey-glide': '@valkey/valkey-glide' }
/** The hot FixedWindow Redis row of a client (ioredis' is the plain one). */
const clientRow = (driver: typeof REDIS_CLIENTS[number]): string => driver === 'ioredis' ? `${T} redis FixedWindow hot` : `${T} redis FixedWindow hot, ${driver} client`

/** The throughput scenarios; `connection` is filled in once the servers run. */
function throughputScenarios (redisUrl: string, memcachedServers: string): Scenario[] {
  const redis = { backend: 'redis' as const, connection: redisUrl }
  const memcached = { backend: 'memcached' as const, connection: memcachedServers }
  const memory = { backend: 'memory' as const }
  const list: Array<Scenario & { full?: boolean }> = [
    { name: BARE, limiter: 'bare', ...memory, keys: 'hot' },
    { name: 'floor: empty preHandler', limiter: 'empty-hook', ...memory, keys: 'hot', full: true },
    { name: 'floor: empty preHandler + 3 headers', limiter: 'empty-hook-headers', ...memory, keys: 'hot', full: true },
    { name: `${T} memory FixedWindow hot`, limiter: 'traffik', ...memory, keys: 'hot' },
    { name: `${T} memory FixedWindow hot + telemetry`, limiter: 'traffik', ...memory, keys: 'hot', telemetry: true },
    // Right after its pinned twin, so each round's pair runs back to back.
    { name: `${T} memory FixedWindow dynamic`, limiter: 'traffik', ...memory, keys: 'hot', dynamic: true },
    { name: `${T} memory FixedWindow 10k keys`, limiter: 'traffik', ...memory, keys: 'rotating' },
    { name: `${T} memory TokenBucket hot`, limiter: 'traffik', ...memory, keys: 'hot', strategy: 'TokenBucket' },
    { name: `${T} memory GCRA hot`, limiter: 'traffik', ...memory, keys: 'hot', strategy: 'GCRA', full: true },
    { name: `${FRL} memory hot`, limiter: 'fastify-rate-limit', ...memory, keys: 'hot' },
    { name: `${FRL} memory 10k keys`, limiter: 'fastify-rate-limit', ...memory, keys: 'rotating' },
    { name: `${RLF} memory hot`, limiter: 'rate-limiter-flexible', ...memory, keys: 'hot' },
    { name: `${T} redis FixedWindow hot`, limiter: 'traffik', ...redis, keys: 'hot' },
    // The same with fleet overrides read inside the decision script (none set): the price of reading them, side by side.
    { name: `${T} redis FixedWindow hot + overrides in decision`, limiter: 'traffik', ...redis, keys: 'hot', overridesInDecision: true },
    { name: `${T} redis FixedWindow hot, coalesceWrites off`, limiter: 'traffik', ...redis, keys: 'hot', backendOptions: { coalesceWrites: false } },
    { name: `${T} redis FixedWindow hot, autoPipelining`, limiter: 'traffik', ...redis, keys: 'hot', backendOptions: { autoPipelining: true } },
    { name: `${T} redis FixedWindow hot with leases`, limiter: 'traffik', ...redis, keys: 'hot', throttleOptions: { lease: true } },
    { name: `${T} redis FixedWindow hot with leases (maxUnits 100)`, limiter: 'traffik', ...redis, keys: 'hot', throttleOptions: { lease: { maxUnits: 100 } }, full: true },
    { name: `${T} redis FixedWindow hot + telemetry`, limiter: 'traffik', ...redis, keys: 'hot', telemetry: true },
    { name: `${T} redis FixedWindow dynamic`, limiter: 'traffik', ...redis, keys: 'hot', dynamic: true },
    { name: `${T} redis FixedWindow 10k keys`, limiter: 'traffik', ...redis, keys: 'rotating', full: true },
    { name: `${T} redis TokenBucket hot`, limiter: 'traffik', ...redis, keys: 'hot', strategy: 'TokenBucket' },
    { name: `${T} redis GCRA hot`, limiter: 'traffik', ...redis, keys: 'hot', strategy: 'GCRA', full: true },
    // The same hot FixedWindow row through each other client library RedisBackend speaks (the row above is ioredis).
    ...REDIS_CLIENTS.slice(1).map((driver) => ({ name: clientRow(driver), limiter: 'traffik' as const, ...redis, keys: 'hot' as const, driver })),
    { name: `${FRL} redis hot`, limiter: 'fastify-rate-limit', ...redis, keys: 'hot' },
    { name: `${FRL} redis 10k keys`, limiter: 'fastify-rate-limit', ...redis, keys: 'rotating', full: true },
    { name: `${RLF} redis hot`, limiter: 'rate-limiter-flexible', ...redis, keys: 'hot' },
    { name: `${T} cluster (2 workers) FixedWindow hot`, limiter: 'traffik', backend: 'cluster', workers: 2, keys: 'hot' },
    { name: `${T} memcached FixedWindow hot`, limiter: 'traffik', ...memcached, keys: 'hot' },
    { name: `${T} memcached TokenBucket hot`, limiter: 'traffik', ...memcached, keys: 'hot', strategy: 'TokenBucket' },
    { name: `${T} memcached GCRA hot`, limiter: 'traffik', ...memcached, keys: 'hot', strategy: 'GCRA', full: true }
    // rate-limiter-flexible's memcached store needs the `memcached` npm client (it does not work
    // with memjs), which this project does not install: no memcached row for it.
  ]
  return list.filter((s) => !(quick && s.full === true)).map(({ full: _full, ...s }) => s)
}

/**
 * `--only=a,b` keeps the scenarios whose name contains any of the comma-separated parts; bare
 * Fastify always, and a dynamic scenario's pinned twin, so its pair can be reported.
 */
function selected (scenario: Scenario, _index: number, all: Scenario[]): boolean {
  if (only === undefined || scenario.name === BARE) return true
  const parts = only.split(',')
  const matches = (name: string): boolean => parts.some((part) => name.includes(part))
  if (matches(scenario.name)) return true
  const twin = all.find((s) => s.dynamic === true && s.name === scenario.name.replace(/ hot$/, ' dynamic'))
  return twin !== undefined && matches(twin.name)
}

interface Row {
  name: string
  rps: number[]
  /** Median over rounds of this round's req/s ÷ bare's req/s in the same round. */
  ratio: number
  p50: number
  p99: number
  cpu: number
  cpuMin: number
  cpuMax: number
  added: number
  non2xx: number
}

function summarize (samples: Map<string, Sample[]>): Row[] {
  const bare = samples.get(BARE)!
  const bareCpu = median(bare.map((s) => s.cpuMicrosPerRequest))
  return [...samples].map(([name, list]) => {
    const cpu = list.map((s) => s.cpuMicrosPerRequest)
    return {
      name,
      rps: list.map((s) => s.rps),
      ratio: median(list.map((s, i) => s.rps / bare[i]!.rps)),
      p50: median(list.map((s) => s.p50)),
      p99: median(list.map((s) => s.p99)),
      cpu: median(cpu),
      cpuMin: Math.min(...cpu),
      cpuMax: Math.max(...cpu),
      added: median(cpu) - bareCpu,
      non2xx: list.reduce((sum, s) => sum + s.non2xx, 0)
    }
  })
}

interface DynamicPair { backend: string, ratio: number, cpu: number }

/** Dynamic vs pinned: median of per-round ratios (the pair runs back to back each round). */
function dynamicPairs (samples: Map<string, Sample[]>): DynamicPair[] {
  const pairs: DynamicPair[] = []
  for (const backend of ['memory', 'redis']) {
    const pinned = samples.get(`${T} ${backend} FixedWindow hot`)
    const dynamic = samples.get(`${T} ${backend} FixedWindow dynamic`)
    if (pinned === undefined || dynamic === undefined) continue
    pairs.push({
      backend,
      ratio: median(dynamic.map((s, i) => s.rps / pinned[i]!.rps)),
      cpu: median(dynamic.map((s, i) => s.cpuMicrosPerRequest - pinned[i]!.cpuMicrosPerRequest))
    })
  }
  return pairs
}

interface Memory { keys: number, maxKeys: number, held: number, bytesPerKey: number, keyStringBytes: number, bytes: number, nsPerInsert: number }

function measureMemory (keys: number, maxKeys: number): Memory {
  const script = fileURLToPath(new URL('./bench/memory-per-key.ts', import.meta.url))
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', script, String(keys), String(maxKeys)], { encoding: 'utf8', cwd: root })
  return JSON.parse(output.trim().split('\n').at(-1)!) as Memory
}

interface DynamicCpu { table: string, costPercent: number }

/**
 * The load-generator-free measure of dynamic resolution (scripts/bench/dynamic-overhead.ts): CPU
 * time per request of a whole app through app.inject, pinned vs resolveBackend, one process per
 * measurement, interleaved rounds.
 */
function measureDynamicCpu (): DynamicCpu {
  const script = fileURLToPath(new URL('./bench/dynamic-overhead.ts', import.meta.url))
  const output = execFileSync(process.execPath, ['--import', 'tsx', script, `--calls=${quick ? 200_000 : 500_000}`, `--rounds=${quick ? 2 : 3}`, '--variants=app.inject dynamic'], { encoding: 'utf8', cwd: root })
  const table = output.trim().split('\n').filter((line) => line.startsWith('|')).join('\n')
  const row = table.split('\n').find((line) => line.startsWith('| app.inject dynamic'))
  const percent = row?.split('|')[4]?.match(/\(([-+]?[\d.]+) %\)/)?.[1]
  return { table, costPercent: percent === undefined ? NaN : Number(percent) }
}

function versionOf (name: string): string {
  const require = createRequire(import.meta.url)
  try {
    return (require(`${name}/package.json`) as { version: string }).version
  } catch {
    // A package whose exports map hides its package.json (GLIDE's): read it where npm put it.
    try {
      return (JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version: string }).version
    } catch {
      return 'unknown'
    }
  }
}

const fmt = (n: number, digits = 0): string => n.toFixed(digits)
const verdict = (met: boolean): string => met ? '**met**' : '**missed**'

async function main (): Promise<void> {
  const startedAt = new Date()
  const loadStart = loadavg()
  const wallStart = Date.now()
  console.error(`load average at start: ${loadStart.map((l) => l.toFixed(2)).join(' ')}`)
  // Servers load fastify-traffik from its build (dist/), like an installed package.
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' })
  const redisServer = await startRedis()
  const memcachedServer = await startMemcached({ memoryMb: 256 })
  const redisUrl = `redis://${redisServer.host}:${redisServer.port}`
  const memcachedServers = `${memcachedServer.host}:${memcachedServer.port}`
  const running: RunningScenario[] = []
  try {
    // 1. Throughput: every server started once, rounds interleaved.
    const scenarios = throughputScenarios(redisUrl, memcachedServers).filter(selected)
    // Started a few at a time (startup is mostly waiting on module loading), kept in table order.
    for (let i = 0; i < scenarios.length; i += 4) running.push(...await Promise.all(scenarios.slice(i, i + 4).map(startServer)))
    const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.name, []]))
    for (let round = 0; round < rounds; round++) {
      for (const server of running) {
        const sample = await measure(server)
        samples.get(server.scenario.name)!.push(sample)
        console.error(`round ${round + 1}/${rounds} ${server.scenario.name}: ${Math.round(sample.rps)} req/s, ${sample.cpuMicrosPerRequest.toFixed(1)} µs CPU/req`)
      }
    }
    await Promise.all(running.splice(0).map(stopServer))
    const rows = summarize(samples)
    const dynamic = dynamicPairs(samples)
    for (const pair of dynamic) {
      console.error(`dynamic vs pinned (${pair.backend}): ${(pair.ratio * 100).toFixed(1)} % of the pinned req/s, ${pair.cpu >= 0 ? '+' : ''}${pair.cpu.toFixed(2)} µs server CPU per request`)
    }
    if (only !== undefined) {
      printThroughput(rows)
      if (rows.some((r) => r.name.includes('leases'))) {
        // Redis commands per decision beside the leases row (INFO commandstats, as the flood row).
        for (const r of await measureLeaseCommands(redisUrl, quick ? 500 : 2000)) {
          console.log(`Redis commands per decision, leases ${r.lease ? 'on' : 'off'}: ${r.commands} commands for ${r.decisions} decisions (${(r.commands / Math.max(1, r.decisions)).toFixed(4)} per decision)`)
        }
      }
      return
    }

    // 2. Round trips per decision, counted by the servers.
    const decisions = quick ? 100 : 500
    console.error(`round trips over ${decisions} decisions...`)
    const trips = await measureRoundTrips(redisUrl, memcachedServers, decisions)

    // 2b. A flood of one blocked client, block cache off and on.
    console.error('flood of one blocked client...')
    const flood = await measureFlood(redisUrl, quick ? 500 : 2000)

    // 2c. Redis commands per decision on a hot key, leases off and on.
    console.error('Redis commands per decision with leases...')
    const leaseCommands = await measureLeaseCommands(redisUrl, quick ? 500 : 2000)

    // 3. Exactness across 4 processes.
    console.error('exactness across 4 processes...')
    const exactness = await measureExactness(redisUrl, memcachedServers, quick ? ['FixedWindow', 'TokenBucket'] : burstStrategyNames)

    // 4. Memory per key and the maxKeys bound.
    const memoryKeys = quick ? 200_000 : 1_000_000
    console.error(`memory per key at ${memoryKeys} keys...`)
    const memory = measureMemory(memoryKeys, memoryKeys)
    const bounded = measureMemory(quick ? 200_000 : 1_000_000, quick ? 20_000 : 100_000)

    // 5. Dynamic resolution in CPU time per request, without a load generator.
    console.error('dynamic vs pinned, CPU time per request...')
    const dynamicCpu = measureDynamicCpu()

    const loadEnd = loadavg()
    const page = renderPage({ startedAt, loadStart, loadEnd, minutes: (Date.now() - wallStart) / 60_000, rows, dynamic, dynamicCpu, trips, flood, leaseCommands, exactness, memory, bounded })
    writeFileSync(new URL('../docs/benchmarks.md', import.meta.url), page)
    writeFileSync(new URL('../docs/benchmarks.svg', import.meta.url), renderChart(
      rows.map((r) => ({ name: r.name, rps: median(r.rps), addedCpu: r.added })),
      `fastify-traffik benchmarks (${quick ? 'quick run' : 'full run'}, ${startedAt.toISOString().slice(0, 10)})`
    ))
    console.log(page)
  } finally {
    await Promise.all(running.map(stopServer))
    await redisServer.stop()
    await memcachedServer.stop()
  }
}

function printThroughput (rows: Row[]): void {
  console.log(throughputTable(rows))
  if (REDIS_CLIENTS.some((driver) => driver !== 'ioredis' && rows.some((r) => r.name === clientRow(driver)))) console.log(`\n${clientTable(rows)}`)
}

function throughputTable (rows: Row[]): string {
  const lines = [
    '| scenario | req/s median (min–max) | × bare (per-round median) | p50 ms | p99 ms | server CPU µs/req median (min–max) | added CPU µs/req |',
    '|---|---|---|---|---|---|---|'
  ]
  for (const r of rows) {
    const errors = r.non2xx > 0 ? ` (${r.non2xx} non-2xx)` : ''
    lines.push(`| ${r.name}${errors} | ${fmt(median(r.rps))} (${fmt(Math.min(...r.rps))}–${fmt(Math.max(...r.rps))}) | ${r.ratio.toFixed(3)} | ${r.p50} | ${r.p99} | ${r.cpu.toFixed(1)} (${r.cpuMin.toFixed(1)}–${r.cpuMax.toFixed(1)}) | ${r.name === BARE ? '—' : r.added.toFixed(1)} |`)
  }
  return lines.join('\n')
}

/** One row per Redis client library: req/s, × bare and the server CPU it adds, side by side. */
function clientTable (rows: Row[]): string {
  const lines = [
    '| client | version | req/s median (min–max) | × bare (per-round median) | p99 ms | server CPU µs/req median (min–max) | added CPU µs/req |',
    '|---|---|---|---|---|---|---|'
  ]
  for (const driver of REDIS_CLIENTS) {
    const r = rows.find((row) => row.name === clientRow(driver))
    if (r === undefined) continue
    const errors = r.non2xx > 0 ? ` (${r.non2xx} non-2xx)` : ''
    lines.push(`| ${driver}${errors} | ${versionOf(CLIENT_PACKAGES[driver])} | ${fmt(median(r.rps))} (${fmt(Math.min(...r.rps))}–${fmt(Math.max(...r.rps))}) | ${r.ratio.toFixed(3)} | ${r.p99} | ${r.cpu.toFixed(1)} (${r.cpuMin.toFixed(1)}–${r.cpuMax.toFixed(1)}) | ${r.added.toFixed(1)} |`)
  }
  return lines.join('\n')
}

interface PageInput {
  startedAt: Date
  loadStart: number[]
  loadEnd: number[]
  minutes: number
  rows: Row[]
  dynamic: DynamicPair[]
  dynamicCpu: DynamicCpu
  trips: RoundTrips[]
  flood: Flood[]
  leaseCommands: LeaseCommands[]
  exactness: Exactness[]
  memory: Memory
  bounded: Memory
}

function renderPage (input: PageInput): string {
  const { rows, dynamic, dynamicCpu, trips, flood, leaseCommands, exactness, memory, bounded } = input
  const row = (name: string): Row | undefined => rows.find((r) => r.name === name)
  const bars: string[] = []
  const bar = (text: string, measured: string, met: boolean | undefined): void => {
    bars.push(`| ${text} | ${measured} | ${met === undefined ? 'not measured' : verdict(met)} |`)
  }
  for (const [label, keys] of [['hot key', 'hot'], ['10 000 rotating keys', '10k keys']] as const) {
    const traffik = row(`${T} memory FixedWindow ${keys}`)
    const frl = row(`${FRL} memory ${keys}`)
    if (traffik === undefined || frl === undefined) continue
    bar(`In-memory FixedWindow, ${label}: ≥ 0.95 × bare req/s`, `${traffik.ratio.toFixed(3)} × bare`, traffik.ratio >= 0.95)
    bar(`In-memory FixedWindow, ${label}: ahead of @fastify/rate-limit`, `${fmt(median(traffik.rps))} vs ${fmt(median(frl.rps))} req/s (${traffik.ratio.toFixed(3)} vs ${frl.ratio.toFixed(3)} × bare)`, traffik.ratio > frl.ratio)
    bar(`In-memory FixedWindow, ${label}: added CPU ≤ ½ of @fastify/rate-limit's`, `${traffik.added.toFixed(1)} vs ${frl.added.toFixed(1)} µs/request (${(traffik.added / frl.added).toFixed(2)} ×)`, traffik.added <= frl.added / 2)
  }
  const redisTrips = trips.filter((t) => t.backend === 'redis' && t.limiter.startsWith(T))
  const worst = Math.max(...redisTrips.map((t) => t.commands / t.decisions))
  bar('Redis: one round trip per decision, every strategy', `${redisTrips.length} strategies, at most ${worst.toFixed(2)} round trips/decision`, redisTrips.length === 8 && redisTrips.every((t) => t.commands === t.decisions))
  const tr = row(`${T} redis FixedWindow hot`)
  const fr = row(`${FRL} redis hot`)
  if (tr !== undefined && fr !== undefined) {
    bar('Redis: req/s ≥ @fastify/rate-limit\'s Redis store', `${fmt(median(tr.rps))} vs ${fmt(median(fr.rps))} req/s (${tr.ratio.toFixed(3)} vs ${fr.ratio.toFixed(3)} × bare; added CPU ${tr.added.toFixed(1)} vs ${fr.added.toFixed(1)} µs)`, tr.ratio >= fr.ratio)
    bar('Redis exact, FixedWindow hot key: ≥ 0.75 × bare req/s', `${tr.ratio.toFixed(3)} × bare`, tr.ratio >= 0.75)
    bar('Redis exact, FixedWindow hot key: less added server CPU per request than @fastify/rate-limit on Redis', `${tr.added.toFixed(1)} vs ${fr.added.toFixed(1)} µs/request`, tr.added < fr.added)
  }
  const leased = row(`${T} redis FixedWindow hot with leases`)
  if (leased !== undefined) bar('Redis with leases (defaults), FixedWindow hot key: ≥ 0.9 × bare req/s', `${leased.ratio.toFixed(3)} × bare (added CPU ${leased.added.toFixed(1)} µs/request)`, leased.ratio >= 0.9)
  const cached = flood.find((f) => f.blockCache)
  if (cached !== undefined) bar('Redis, block cache: < 0.01 Redis commands per rejected request under a flood of one blocked client', `${cached.commands} commands for ${cached.rejected} rejected requests (${(cached.commands / Math.max(1, cached.rejected)).toFixed(4)} per request)`, cached.commands / Math.max(1, cached.rejected) < 0.01)
  const exactRows = exactness.filter((e) => e.bounds[0] === e.bounds[1])
  const leaseRows = exactness.filter((e) => e.bounds[0] !== e.bounds[1])
  bar('Exactness: 1000 concurrent requests over 4 processes, limit 100 = one in-memory process (every strategy; Redis, memcached and ClusterBackend with coalesced writes and the block cache)',
    `${exactRows.filter(withinBounds).length} of ${exactRows.length} rows exact`, exactRows.length > 0 && exactRows.every(withinBounds))
  bar(`Leases (maxUnits ${LEASE_UNITS}) over 4 processes: admitted within the bound of docs/leases.md`,
    leaseRows.map((e) => `${e.backend} ${e.strategy} ${e.allowed} in [${e.bounds[0]}, ${e.bounds[1]}]`).join(', '), leaseRows.length > 0 && leaseRows.every(withinBounds))
  bar(`Memory: ≤ 150 bytes/key at ${memory.held.toLocaleString('en-US')} keys (key strings included)`, `${fmt(memory.bytesPerKey)} B/key, of which ${fmt(memory.keyStringBytes)} B the key strings`, memory.held >= 1_000_000 ? memory.bytesPerKey <= 150 : undefined)
  bar('Memory: the backend\'s own structure ≤ 150 bytes/key (key strings excluded)', `${fmt(memory.bytesPerKey - memory.keyStringBytes)} B/key`, memory.held >= 1_000_000 ? memory.bytesPerKey - memory.keyStringBytes <= 150 : undefined)
  bar(`Memory: bounded by maxKeys (${bounded.keys.toLocaleString('en-US')} keys into maxKeys ${bounded.maxKeys.toLocaleString('en-US')})`, `${bounded.held.toLocaleString('en-US')} keys held, ${(bounded.bytes / 2 ** 20).toFixed(1)} MiB`, bounded.held <= bounded.maxKeys)
  for (const pair of dynamic) {
    bar(`Dynamic backend resolution < 2 % throughput cost (${pair.backend}, req/s of the pair)`, `${((1 - pair.ratio) * 100).toFixed(1)} % (${pair.cpu >= 0 ? '+' : ''}${pair.cpu.toFixed(2)} µs server CPU/request)`, pair.ratio > 0.98)
  }
  bar('Dynamic backend resolution < 2 % (in-memory, CPU time per request of a whole app, no load generator)', `${dynamicCpu.costPercent >= 0 ? '+' : ''}${dynamicCpu.costPercent.toFixed(1)} % CPU per request`, Number.isNaN(dynamicCpu.costPercent) ? undefined : dynamicCpu.costPercent < 2)

  const cpu = cpus()
  const lines: string[] = [
    '# Benchmarks',
    '',
    `Generated by \`npm run bench${quick ? ' -- --quick' : ''}\` on ${input.startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} (${input.minutes.toFixed(1)} minutes).`,
    quick ? '**This is a quick run** (fewer rounds, shorter loads, 200 000 keys for memory): read it as indicative; a full run replaces it.' : '',
    '',
    '## Machine and versions',
    '',
    `- CPU: ${cpu.length} × ${cpu[0]?.model ?? 'unknown'}; memory ${Math.round(totalmem() / 2 ** 30)} GiB`,
    `- Node ${process.version}; fastify ${versionOf('fastify')}; @fastify/rate-limit ${versionOf('@fastify/rate-limit')}; rate-limiter-flexible ${versionOf('rate-limiter-flexible')}; ioredis ${versionOf('ioredis')}; iovalkey ${versionOf('iovalkey')}; redis ${versionOf('redis')}; @valkey/valkey-glide ${versionOf('@valkey/valkey-glide')}; memjs ${versionOf('memjs')}; autocannon ${versionOf('autocannon')}`,
    `- ${redisVersion()}; ${memcachedVersion()}, both on loopback, started by the benchmark`,
    `- Load average (1, 5, 15 min) at start: ${input.loadStart.map((l) => l.toFixed(2)).join(', ')}; at end: ${input.loadEnd.map((l) => l.toFixed(2)).join(', ')}. The machine was shared with other work during the run: absolute requests/second are depressed and noisy; the ratios (taken within each round) and the CPU time per request are the numbers to read.`,
    '',
    '## Method',
    '',
    `- Each scenario's Fastify server runs in its own process (\`NODE_ENV=production\`, logger off, one \`GET /\` route returning a small JSON object); the benchmark process generates load with autocannon (${connections} connections, keep-alive).`,
    `- ${rounds} interleaved rounds (every scenario once per round, in the order of the table), ${durationSeconds} s of load each after a warm-up; medians with min–max.`,
    '- "× bare" is the median over rounds of the scenario\'s req/s divided by bare Fastify\'s req/s in the same round.',
    '- Server CPU µs/request is the server process\'s own `process.cpuUsage()` (user + system) over the load divided by the requests served; "added" subtracts bare Fastify\'s median. On this 2-core machine the load generator takes about one core, so req/s is capped by it; CPU time per request is what the limiter really costs.',
    '- Every limiter keys clients by the `x-client` header; "hot" sends one key, "10k keys" rotates over 10 000. The limit (1 000 000 000 per minute) is never reached: this measures the common, allowed path. GCRA, which spaces requests evenly by default, gets `burst: 1 000 000` so its requests are allowed too; a row with rejections says how many.',
    '- The two "floor" rows are Fastify with an empty `preHandler` hook, and with one that also sets three headers: what any limiter of this shape costs at least. Their spread shows the noise of the host: differences of a few percent in req/s between rows are within it.',
    '- fastify-traffik runs as a global limit (`global` option, `preHandler` hook, legacy headers); @fastify/rate-limit as registered globally (its `onRequest` hook, its headers); rate-limiter-flexible as an `onRequest` hook calling `consume()` (no headers).',
    '',
    '## The bars',
    '',
    '| bar | measured | verdict |',
    '|---|---|---|',
    ...bars,
    '',
    '## Throughput',
    '',
    '![requests/second and added CPU time per request](benchmarks.svg)',
    '',
    throughputTable(rows),
    '',
    '## Redis clients side by side',
    '',
    'The hot FixedWindow Redis row through each client library RedisBackend speaks, each with the client the backend makes from the URL (the `driver` option; its fail-fast settings, docs/backends/redis.md). The same script, the same round trip per decision: the differences are the clients\' own cost per command.',
    '',
    clientTable(rows),
    '',
    '## Dynamic vs pinned backend',
    '',
    'The same FixedWindow limit with the backend pinned, and resolved per request (`resolveBackend` + `dynamicBackend: true`). The two run back to back in each round; the figures are medians of per-round ratios and differences.',
    '',
    '| backend | dynamic req/s ÷ pinned | throughput cost | added server CPU µs/request |',
    '|---|---|---|---|',
    ...dynamic.map((p) => `| ${p.backend} | ${p.ratio.toFixed(3)} | ${((1 - p.ratio) * 100).toFixed(1)} % | ${p.cpu >= 0 ? '+' : ''}${p.cpu.toFixed(2)} |`),
    '',
    'The same comparison without a load generator (`scripts/bench/dynamic-overhead.ts`): CPU time per request of a whole app through `app.inject`, pinned vs `resolveBackend`, one process per measurement, interleaved rounds. On a CPU-bound server, throughput is the inverse of CPU time per request, so this is the steadier estimate of the throughput cost on a shared machine.',
    '',
    dynamicCpu.table,
    '',
    '## Round trips per decision',
    '',
    `Counted by the servers. Redis: round trips are the commands clients sent, seen by \`MONITOR\` (commands a Lua script runs inside the server are tagged there and are not round trips); "commands seen" are \`INFO commandstats\` deltas, which include the commands run inside scripts. Memcached: \`stats\` deltas (gets, sets incl. add/cas, touch, incr/decr, delete), each a round trip. Over ${trips[0]?.decisions ?? 0} decisions on one key through \`app.inject\` (limit 1 000 000/min; strategies that space requests evenly get \`burst: 10 000\`, so the decisions are admissions), after a warm-up that loads the scripts. The apps run with \`overrides: false\`: the fleet-overrides refresh reads the backend once per \`refreshMs\` (1 s by default) per process whatever the traffic, a cost per process rather than per decision.`,
    '',
    '| limiter | backend | decisions (admitted) | round trips per decision | commands seen |',
    '|---|---|---|---|---|',
    ...trips.map((t) => `| ${t.limiter} | ${t.backend} | ${t.decisions} (${t.admitted}) | ${(t.commands / t.decisions).toFixed(2)} | ${t.detail} |`),
    '',
    '## Block cache under a flood',
    '',
    'One client at `10/hour` sends its 10 requests, then a flood through `app.inject`; Redis commands counted by the server (`INFO commandstats`, scripts\' inner commands included). The block cache is the `blockCache` backend option ([block cache](block-cache.md)).',
    '',
    '| block cache | rejected requests | Redis commands | commands per rejected request |',
    '|---|---|---|---|',
    ...flood.map((f) => `| ${f.blockCache ? 'on' : 'off'} | ${f.rejected} | ${f.commands} | ${(f.commands / Math.max(1, f.rejected)).toFixed(4)} |`),
    '',
    '## Leases: Redis commands per decision',
    '',
    'One key, `1000000/min`, requests through `app.inject` one at a time; Redis commands counted by the server (`INFO commandstats`, scripts\' inner commands included). Leases are the `lease` throttle option with its defaults ([leases](leases.md)).',
    '',
    '| leases | decisions | Redis commands | commands per decision |',
    '|---|---|---|---|',
    ...leaseCommands.map((l) => `| ${l.lease ? 'on' : 'off'} | ${l.decisions} | ${l.commands} | ${(l.commands / Math.max(1, l.decisions)).toFixed(4)} |`),
    '',
    '## Exactness across 4 processes',
    '',
    `1000 concurrent requests for one identifier, spread round-robin over 4 Fastify processes sharing the backend, rate \`${EXACTNESS_RATE}\` (a long window, so refilling strategies cannot earn a unit back while the burst is in flight); "expected" is what one in-memory process admits for the same burst. Every strategy runs with the speed options on: Redis coalesces the writes of a turn (its default, [pipelining](backends/redis.md#pipelining)) and every backend has the [block cache](block-cache.md); these rows must be exact. The lease rows must fall within the bound of [leases](leases.md): with P = 4 processes and K = ${LEASE_UNITS}, FixedWindow admits between the limit less P × 1.5 K and the limit, TokenBucket within P × K of the limit. ClusterBackend's processes are node:cluster workers of the benchmark process. Concurrency is not in the table: its slots come back as each response ends, so a burst of quick requests never runs out; \`test/throttle/concurrency-processes.test.ts\` holds requests open across 4 processes instead.`,
    '',
    '| backend | options | strategy | allowed | rejected | other statuses | expected | within |',
    '|---|---|---|---|---|---|---|---|',
    ...exactness.map((e) => `| ${e.backend} | ${e.options} | ${e.strategy} | ${e.allowed} | ${e.rejected} | ${e.other} | ${e.expected} | ${e.bounds[0] === e.bounds[1] ? (withinBounds(e) ? 'exact' : '**not exact**') : `[${e.bounds[0]}, ${e.bounds[1]}]${withinBounds(e) ? '' : ' **outside**'}`} |`),
    '',
    '## Memory per key (InMemoryBackend, FixedWindow)',
    '',
    'In a process of its own with `--expose-gc`: heapUsed + arrayBuffers after full collections, before and after filling distinct keys shaped like a throttle\'s (`GET:/items/:id:{10.x.y.z}`, built as the throttle builds them from a fresh identifier string). "Key strings" is what the same strings cost held in an array, so the backend\'s own structure can be read apart from the identifiers you choose.',
    '',
    '| keys inserted | maxKeys | keys held | total bytes/key | of which key strings | structure bytes/key | total MiB | ns/insert |',
    '|---|---|---|---|---|---|---|---|',
    ...[memory, bounded].map((m) => `| ${m.keys.toLocaleString('en-US')} | ${m.maxKeys.toLocaleString('en-US')} | ${m.held.toLocaleString('en-US')} | ${fmt(m.bytesPerKey)} | ${fmt(m.keyStringBytes)} | ${fmt(m.bytesPerKey - m.keyStringBytes)} | ${(m.bytes / 2 ** 20).toFixed(1)} | ${fmt(m.nsPerInsert)} |`),
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm run bench            # full run, about 10 minutes; rewrites this page and benchmarks.svg',
    'npm run bench -- --quick # about 2 minutes, indicative',
    'npm run bench -- --only=redis # some throughput scenarios only (prints, writes nothing)',
    '```',
    '',
    'redis-server and memcached must be installed (they are started on free loopback ports and stopped afterwards).',
    ''
  ]
  return lines.filter((line, i, all) => !(line === '' && all[i - 1] === '')).join('\n')
}

function redisVersion (): string {
  try { return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)?.[0].replace('v=', 'redis-server ') ?? 'redis-server' } catch { return 'redis-server' }
}

function memcachedVersion (): string {
  try { return execFileSync('memcached', ['-V'], { encoding: 'utf8' }).trim() } catch { return 'memcached' }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}
