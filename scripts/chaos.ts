/**
 * `npm run test:chaos`: the slow reliability suite (test/chaos/*.chaos.ts): backend outages under
 * load and the unique-key flood. Each file starts the servers it kills itself. Files run one at a
 * time so the load of one does not skew the latencies measured by another. Prints the results
 * table, then `N passed, N failed` (test cases) as its last line.
 *
 * Arguments are passed to tap (e.g. `npm run test:chaos -- test/chaos/flood.chaos.ts` runs one file).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ScenarioResult } from './support/chaos-results.js'
import { printFailures, runTapCounting } from './tap-counts.js'

const args = process.argv.slice(2)
const files = args.some((a) => a.endsWith('.chaos.ts'))
  ? []
  : readdirSync('test/chaos').filter((f) => f.endsWith('.chaos.ts')).sort().map((f) => join('test/chaos', f))

interface FloodRow {
  flood: {
    keys: number,
    maxKeys: number,
    protectLimited: boolean,
    held: number,
    peakRssMb: number,
    peakHeapMb: number,
    heapAfterMb: number,
    bytesPerKey: number,
    limitedBefore: boolean,
    limitedAfter: boolean
  }
}

async function main (): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'traffik-chaos-'))
  const resultsFile = join(dir, 'results.jsonl')
  try {
    const counts = await runTapCounting(['--jobs=1', '--timeout=400', ...files, ...args], { ...process.env, TRAFFIK_CHAOS_RESULTS: resultsFile })
    printTable(resultsFile)
    printFailures(counts.failures)
    console.log(`${counts.passed} passed, ${counts.failed} failed`)
    return counts.failed === 0 && counts.exitCode === 0 ? 0 : 1
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function statuses (counts: Record<string, number> | undefined): string {
  if (counts === undefined) return '-'
  return Object.entries(counts).map(([status, n]) => `${status}×${n}`).join(' ')
}

function printTable (file: string): void {
  let lines: string[]
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '')
  } catch {
    return
  }
  const rows = lines.map((l) => JSON.parse(l) as ScenarioResult | FloodRow)
  const outages = rows.filter((r): r is ScenarioResult => !('flood' in r))
  const floods = rows.filter((r): r is FloodRow => 'flood' in r)
  if (outages.length > 0) {
    console.log('\n# Backend outages under ~200 req/s (timeoutMs 250; fault at 1 s, server back after 2 s; 5 s of load)\n')
    console.log('| backend | scenario | route | all answers | answers during the fault | max latency in the app | max latency at the client | recovery |')
    console.log('|---|---|---|---|---|---|---|---|')
    for (const r of outages) {
      for (const [i, route] of Object.keys(r.answers).sort().entries()) {
        const head = i === 0 ? `| ${r.backend} | ${r.scenario} ` : '| | '
        const tail = i === 0 ? `| ${r.maxServerMs} ms | ${r.maxLatencyMs} ms | ${r.recoveryMs === undefined ? 'never' : `${r.recoveryMs} ms`} |` : '| | | |'
        console.log(`${head}| ${route} | ${statuses(r.answers[route])} | ${statuses(r.duringFault[route])} ${tail}`)
      }
    }
    const notes = outages.filter((r) => r.notes !== undefined)
    for (const r of notes) console.log(`\n${r.backend}, ${r.scenario}: ${r.notes}`)
  }
  if (floods.length > 0) {
    console.log('\n# Unique-key flood against InMemoryBackend (child process, --expose-gc)\n')
    console.log('| identifiers | maxKeys | protectLimited | keys held | peak RSS | peak heap | heap after GC | bytes per key at the bound | limited client after the flood |')
    console.log('|---|---|---|---|---|---|---|---|---|')
    for (const { flood: f } of floods) {
      console.log(`| ${f.keys} | ${f.maxKeys} | ${f.protectLimited} | ${f.held} | ${f.peakRssMb} MB | ${f.peakHeapMb} MB | ${f.heapAfterMb} MB | ${f.bytesPerKey} | ${f.limitedAfter ? 'still limited' : 'freed'} |`)
    }
  }
  console.log('')
}

main().then((code) => { process.exit(code) }, (error: unknown) => {
  console.error(error)
  console.log('0 passed, 1 failed')
  process.exit(1)
})
