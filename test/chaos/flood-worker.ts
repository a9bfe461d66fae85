/**
 * One flood measurement, run in its own process with --expose-gc so memory numbers are clean:
 * a client is limited, then N unique identifiers hit an InMemoryBackend bounded by `maxKeys`
 * through a Throttle. Prints one JSON line: peak RSS and heap, bytes per key at the bound,
 * keys held, whether the limited client is still limited, and whether a key was evicted
 * before the bound.
 */
import { FixedWindow, InMemoryBackend, ManualClock, Throttle } from '../../lib/index.js'

interface FloodSetup { keys: number, maxKeys: number, protectLimited: boolean }

const setup = JSON.parse(process.env.TRAFFIK_FLOOD ?? '{}') as FloodSetup
const gc = (globalThis as { gc?: () => void }).gc

function used (): { heap: number, external: number, rss: number } {
  gc?.()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, external: m.external + m.arrayBuffers, rss: m.rss }
}

async function main (): Promise<void> {
  if (gc === undefined) throw new Error('run with --expose-gc')
  // A clock that stands still: the attacker's window cannot end during the flood, so only
  // eviction can free it.
  const clock = new ManualClock(1_700_000_000_000)
  const backend = new InMemoryBackend({ maxKeys: setup.maxKeys, protectLimited: setup.protectLimited, clock })
  await backend.initialize()
  const throttle = new Throttle({ uid: 'flood', rate: '5/min', strategy: new FixedWindow(), backend })
  const before = used()

  // The attacker spends its budget and is being limited.
  const attacker = { ip: '203.0.113.66' }
  for (let i = 0; i < 6; i++) await throttle.hit(attacker)
  const limitedBefore = !(await throttle.check(attacker)).allowed

  // Below the bound nothing is evicted early: the first flood key keeps its count.
  const first = { ip: 'flood-0' }
  let peakRss = 0
  let peakHeap = 0
  let atBound: { heap: number, external: number } | undefined
  let firstKeptBelowBound = true
  for (let i = 0; i < setup.keys; i++) {
    await throttle.hit(i === 0 ? first : { ip: `flood-${i}` })
    if (i === setup.maxKeys - 3) {
      // maxKeys - 1 keys held (the attacker + maxKeys - 2 flood keys)
      firstKeptBelowBound = (await throttle.stat(first)).remaining === 4
    }
    if (i % 50_000 === 0 || i === setup.keys - 1) {
      const m = process.memoryUsage()
      peakRss = Math.max(peakRss, m.rss)
      peakHeap = Math.max(peakHeap, m.heapUsed)
    }
    if (i === setup.maxKeys * 2) {
      const m = used()
      atBound = { heap: m.heap, external: m.external }
    }
  }
  const after = used()
  const limitedAfter = !(await throttle.check(attacker)).allowed
  const bound = atBound ?? after
  const bytesPerKey = (bound.heap + bound.external - before.heap - before.external) / backend.size
  process.stdout.write(JSON.stringify({
    keys: setup.keys,
    maxKeys: setup.maxKeys,
    protectLimited: setup.protectLimited,
    held: backend.size,
    peakRssMb: Math.round(Math.max(peakRss, process.resourceUsage().maxRSS * 1024) / 1048576),
    peakHeapMb: Math.round(peakHeap / 1048576),
    heapAfterMb: Math.round(after.heap / 1048576),
    bytesPerKey: Math.round(bytesPerKey),
    limitedBefore,
    limitedAfter,
    firstKeptBelowBound
  }) + '\n')
  await backend.close()
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
