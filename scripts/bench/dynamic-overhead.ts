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
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createThrottle, InMemoryBackend, type Throttle } from '../../lib/index.js'
import { createBackendResolver } from '../../lib/plugin/backend-lifecycle.js'

const argument = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const calls = Number(argument('calls') ?? 1_000_000)
const rounds = Number(argument('rounds') ?? 7)
const only = argument('variant')
const rate = { limit: 1_000_000_000, windowMs: 60_000 }

const reply = { sent: false, header () { return reply }, code () { return reply }, send () { return reply } }
const done = (error?: Error): void => { if (error !== undefined) throw error }

type Variant = { name: string, run: (n: number) => void }

function hookLoop (throttle: Throttle, request: Record<string, unknown>): (n: number) => void {
  const hook = throttle.hook
  return (n) => { for (let i = 0; i < n; i++) hook(request as never, reply as never, done) }
}

/**
 * The variants, each with its own throttle; identical request shapes and key lengths for all
 * (V8 builds strings of 13+ characters as ropes that Map lookups must flatten, so a uid one
 * character longer would be measured, not the resolution).
 */
function variants (backend: InMemoryBackend): Variant[] {
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
    { name: 'dynamic (backend.run context)', run: (n) => { backend.run(() => { hookLoop(viaContext, { throttleBackend: null })(n) }) } }
  ]
}

/** Child: measures one variant and prints its ns per call. */
async function measureOne (name: string): Promise<void> {
  const backend = new InMemoryBackend()
  await backend.initialize()
  const variant = variants(backend).find((v) => v.name === name)!
  variant.run(Math.min(calls, 300_000)) // warm-up: JIT
  const started = process.hrtime.bigint()
  variant.run(calls)
  console.log(JSON.stringify({ nsPerCall: Number(process.hrtime.bigint() - started) / calls }))
  await backend.close()
}

async function main (): Promise<void> {
  const names = variants(new InMemoryBackend()).map((v) => v.name)
  const samples = new Map<string, number[]>(names.map((n) => [n, []]))
  const self = fileURLToPath(import.meta.url)
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      const output = execFileSync(process.execPath, ['--import', 'tsx', self, `--variant=${name}`, `--calls=${calls}`], { encoding: 'utf8' })
      samples.get(name)!.push((JSON.parse(output.trim().split('\n').at(-1)!) as { nsPerCall: number }).nsPerCall)
    }
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!
  const base = median(samples.get('pinned')!)
  console.log(`node ${process.version}; ${rounds} interleaved rounds, one process per measurement, ${calls} calls each; medians`)
  console.log('| variant | ns/call median (min–max) | vs pinned |')
  console.log('|---|---|---|')
  for (const [name, values] of samples) {
    const m = median(values)
    const delta = name === 'pinned' ? '—' : `${m - base >= 0 ? '+' : ''}${(m - base).toFixed(1)} ns (${(((m - base) / base) * 100).toFixed(1)} %)`
    console.log(`| ${name} | ${m.toFixed(1)} (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)}) | ${delta} |`)
  }
}

(only === undefined ? main() : measureOne(only)).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
