/**
 * `npx tsx scripts/bench/dynamic-overhead.ts [--calls=N] [--rounds=R]`: the load-generator-free
 * measure of dynamic backend resolution. Calls a throttle's enforcement hook (the hook a route
 * runs) N times on a hot in-memory key, pinned vs dynamic, and reports the median ns per call.
 * Each measurement runs in a fresh process (so one variant's type feedback never slows another,
 * as in a real server that runs one of them) and the variants are interleaved over R rounds.
 * On a shared, noisy machine this is steadier than requests/second.
 *
 * - pinned: the throttle's own backend.
 * - dynamic (request): `dynamicBackend: true`, `request.throttleBackend` set beforehand.
 * - dynamic (resolveBackend + hook): the plugin's resolver hook (sync resolveBackend) then the
 *   throttle's hook: everything a request pays for dynamic resolution.
 * - dynamic (run context): `dynamicBackend: true` inside `backend.run()` (jobs and scripts).
 * - app.inject pinned / dynamic: a whole Fastify app with the plugin (global limit), through
 *   `app.inject`, without and with `resolveBackend`: the onRequest hook Fastify runs included.
 *   These run --calls / 50 requests per measurement. A third, pinned plus an empty onRequest
 *   hook, shows what Fastify charges for one more hook, whatever it does.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { createThrottle, InMemoryBackend, traffik, type Throttle } from '../../lib/index.js'
import { createBackendResolver } from '../../lib/plugin/backend-lifecycle.js'

const argument = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const calls = Number(argument('calls') ?? 1_000_000)
const rounds = Number(argument('rounds') ?? 7)
const only = argument('variant')
/** `--variants=a,b`: measure only the variants whose names contain one of these parts (the baselines always). */
const subset = argument('variants')?.split(',')
const rate = { limit: 1_000_000_000, windowMs: 60_000 }

const reply = { sent: false, header () { return reply }, code () { return reply }, send () { return reply } }
const done = (error?: Error): void => { if (error !== undefined) throw error }

type Variant = { name: string, run: (n: number) => void | Promise<void>, /** calls per measurement, relative to --calls */ scale?: number }

/** A whole Fastify app through `app.inject`: the plugin's hooks included, pinned or with resolveBackend. */
async function injectVariant (name: string, backend: InMemoryBackend, dynamic: boolean, emptyHook = false): Promise<Variant> {
  const app = Fastify()
  // The floor of any per-request resolution done in a hook of its own: one more onRequest hook that does nothing.
  if (emptyHook) app.addHook('onRequest', (_request, _reply, done) => { done() })
  await app.register(traffik, dynamic
    ? { backend, resolveBackend: () => backend, global: { rate, dynamicBackend: true, identifier: () => 'GET:/items/:id-client' } }
    : { backend, global: { rate, identifier: () => 'GET:/items/:id-client' } })
  app.get('/', async () => 'ok')
  await app.ready()
  return {
    name,
    scale: 1 / 50,
    run: async (n) => { for (let i = 0; i < n; i++) await app.inject('/') }
  }
}

function hookLoop (throttle: Throttle, request: Record<string, unknown>): (n: number) => void {
  const hook = throttle.hook
  return (n) => { for (let i = 0; i < n; i++) hook(request as never, reply as never, done) }
}

/**
 * The variants, each with its own throttle; identical request shapes and key lengths for all
 * (V8 builds strings of 13+ characters as ropes that Map lookups must flatten, so a uid one
 * character longer would be measured, not the resolution).
 */
async function variants (backend: InMemoryBackend): Promise<Variant[]> {
  const identifier = (): string => 'GET:/items/:id-client'
  const pinned = createThrottle({ uid: 'pinned', rate, backend, identifier })
  const dynamic = createThrottle({ uid: 'dynreq', rate, dynamicBackend: true, identifier })
  const viaResolver = createThrottle({ uid: 'dynres', rate, dynamicBackend: true, identifier })
  const viaContext = createThrottle({ uid: 'dyncxt', rate, dynamicBackend: true, identifier })
  const resolver = createBackendResolver(() => backend)
  const resolverHook = viaResolver.hook
  const resolverRequest = { throttleBackend: null as unknown }
  return [
    { name: 'pinned', run: hookLoop(pinned, { throttleBackend: null }) },
    { name: 'dynamic (request.throttleBackend)', run: hookLoop(dynamic, { throttleBackend: backend }) },
    {
      name: 'dynamic (resolveBackend hook + hook)',
      run: (n) => {
        for (let i = 0; i < n; i++) {
          resolverRequest.throttleBackend = null
          resolver(resolverRequest as never, reply as never, done)
          resolverHook(resolverRequest as never, reply as never, done)
        }
      }
    },
    { name: 'dynamic (backend.run context)', run: (n) => { backend.run(() => { hookLoop(viaContext, { throttleBackend: null })(n) }) } },
    await injectVariant('app.inject pinned', backend, false),
    await injectVariant('app.inject dynamic (resolveBackend)', backend, true),
    await injectVariant('app.inject pinned + empty onRequest hook', backend, false, true)
  ]
}

/** Child: measures one variant and prints its ns per call. */
async function measureOne (name: string): Promise<void> {
  const backend = new InMemoryBackend()
  await backend.initialize()
  const variant = (await variants(backend)).find((v) => v.name === name)!
  const n = Math.max(1, Math.round(calls * (variant.scale ?? 1)))
  await variant.run(Math.min(n, 300_000)) // warm-up: JIT
  const started = process.hrtime.bigint()
  const cpuBefore = process.cpuUsage()
  await variant.run(n)
  const cpu = process.cpuUsage(cpuBefore)
  // CPU time is what this process itself spent: time stolen by other processes does not count.
  console.log(JSON.stringify({ nsPerCall: Number(process.hrtime.bigint() - started) / n, cpuNsPerCall: (cpu.user + cpu.system) * 1000 / n }))
  process.exit(0)
  await backend.close()
}

async function main (): Promise<void> {
  const names = (await variants(new InMemoryBackend())).map((v) => v.name)
    .filter((name) => subset === undefined || name === 'pinned' || name === 'app.inject pinned' || subset.some((part) => name.includes(part)))
  const wall = new Map<string, number[]>(names.map((n) => [n, []]))
  const cpu = new Map<string, number[]>(names.map((n) => [n, []]))
  const self = fileURLToPath(import.meta.url)
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      const output = execFileSync(process.execPath, ['--import', 'tsx', self, `--variant=${name}`, `--calls=${calls}`], { encoding: 'utf8' })
      const sample = JSON.parse(output.trim().split('\n').at(-1)!) as { nsPerCall: number, cpuNsPerCall: number }
      wall.get(name)!.push(sample.nsPerCall)
      cpu.get(name)!.push(sample.cpuNsPerCall)
    }
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!
  const delta = (value: number, base: number): string => `${value - base >= 0 ? '+' : ''}${(value - base).toFixed(1)} ns (${(((value - base) / base) * 100).toFixed(1)} %)`
  console.log(`node ${process.version}; ${rounds} interleaved rounds, one process per measurement, ${calls} calls each`)
  console.log('CPU ns/call is the process\'s own CPU time (robust to other load); min is the least disturbed round.')
  console.log('| variant | CPU ns/call median | CPU min | vs pinned (median) | vs pinned (min) | wall ns/call median (min–max) |')
  console.log('|---|---|---|---|---|---|')
  for (const name of names) {
    const c = cpu.get(name)!
    const w = wall.get(name)!
    const baseName = name.startsWith('app.inject') ? 'app.inject pinned' : 'pinned'
    const baseMedian = median(cpu.get(baseName)!)
    const baseMin = Math.min(...cpu.get(baseName)!)
    const first = name === baseName
    console.log(`| ${name} | ${median(c).toFixed(1)} | ${Math.min(...c).toFixed(1)} | ${first ? '—' : delta(median(c), baseMedian)} | ${first ? '—' : delta(Math.min(...c), baseMin)} | ${median(w).toFixed(1)} (${Math.min(...w).toFixed(1)}–${Math.max(...w).toFixed(1)}) |`)
  }
}

(only === undefined ? main() : measureOne(only)).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
