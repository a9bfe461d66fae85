/**
 * A flood of 1 000 000 unique identifiers against InMemoryBackend({ maxKeys: 100 000 }), measured
 * in a child process with --expose-gc: the number of keys held stays at the bound, memory stays
 * bounded, nothing is evicted below the bound, and a client that is being limited stays limited
 * with `protectLimited: true` (the default) while the flood frees it with `protectLimited: false`.
 * The default bound (1 000 000 keys) is measured too, for bytes per key at that size.
 */
import { execFile } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const workerPath = fileURLToPath(new URL('./flood-worker.ts', import.meta.url))

interface FloodResult {
  keys: number
  maxKeys: number
  protectLimited: boolean
  held: number
  peakRssMb: number
  peakHeapMb: number
  heapAfterMb: number
  bytesPerKey: number
  limitedBefore: boolean
  limitedAfter: boolean
  firstKeptBelowBound: boolean
}

async function flood (keys: number, maxKeys: number, protectLimited: boolean): Promise<FloodResult> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', workerPath], {
    env: { ...process.env, TRAFFIK_FLOOD: JSON.stringify({ keys, maxKeys, protectLimited }) },
    timeout: 120_000,
    maxBuffer: 1 << 20
  })
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as FloodResult
  const file = process.env.TRAFFIK_CHAOS_RESULTS
  if (file !== undefined && file !== '') appendFileSync(file, JSON.stringify({ flood: result }) + '\n')
  return result
}

for (const protectLimited of [true, false]) {
  t.test(`1 000 000 identifiers, maxKeys 100 000, protectLimited ${protectLimited}`, async (t) => {
    const r = await flood(1_000_000, 100_000, protectLimited)
    t.equal(r.held, 100_000, 'the backend holds exactly maxKeys keys')
    t.ok(r.firstKeptBelowBound, 'below the bound nothing was evicted early')
    t.ok(r.heapAfterMb < 100, `heap after the flood: ${r.heapAfterMb} MB (bounded; ${r.bytesPerKey} B per key at the bound)`)
    t.ok(r.bytesPerKey < 1024, `${r.bytesPerKey} bytes per key`)
    t.ok(r.peakRssMb < 600, `peak RSS ${r.peakRssMb} MB`)
    t.ok(r.limitedBefore, 'the attacker was limited before the flood')
    if (protectLimited) t.ok(r.limitedAfter, 'protectLimited: the flood did not free the limited client')
    else t.notOk(r.limitedAfter, 'without protectLimited the flood evicted the limited client (the documented trade-off)')
  })
}

t.test('1 000 000 identifiers at the default bound (maxKeys 1 000 000)', async (t) => {
  const r = await flood(1_000_000, 1_000_000, true)
  t.ok(r.held <= 1_000_000, `${r.held} keys held`)
  t.ok(r.bytesPerKey < 1024, `${r.bytesPerKey} bytes per key at 1 000 000 keys`)
  t.ok(r.limitedAfter, 'the limited client stays limited')
})
