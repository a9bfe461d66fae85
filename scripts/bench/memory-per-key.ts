/**
 * `node --expose-gc --import tsx scripts/bench/memory-per-key.ts <keys> <maxKeys>`: memory per key
 * of InMemoryBackend with FixedWindow. Fills `keys` distinct keys shaped like a throttle's
 * (`<uid>:{<identifier>}`), then reports (heapUsed + arrayBuffers after − before) / keys held,
 * after full garbage collections. Runs in a process of its own so nothing else is on the heap.
 * Prints one JSON line.
 */
import { FixedWindow, InMemoryBackend } from '../../lib/index.js'

const keys = Number(process.argv[2] ?? 1_000_000)
const maxKeys = Number(process.argv[3] ?? keys)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')

function used (): number {
  for (let i = 0; i < 3; i++) gc!()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

const prefix = 'GET:/items/:id:{'
/**
 * A key built the way a throttle builds it (`prefix + identifier + '}'`) from a fresh, flat
 * identifier string, as Fastify's parsed `request.ip` or a header value would be.
 */
const keyOf = (i: number): string => prefix + Buffer.from(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`).toString('latin1') + '}'

/**
 * What the key strings alone cost (held in an array and hashed once, as a Map does), so the page
 * can tell the backend's own structure from the identifiers a user chooses.
 */
function keyStringBytes (count: number): number {
  const probe = new Set<string>()
  const base = used()
  const strings: string[] = new Array<string>(count)
  for (let i = 0; i < count; i++) {
    const key = keyOf(i)
    probe.add(key)
    probe.clear()
    strings[i] = key
  }
  const bytes = (used() - base) / count - 8
  strings.length = 0
  return bytes
}

async function main (): Promise<void> {
  const keyBytes = keyStringBytes(Math.min(keys, maxKeys))
  const strategy = new FixedWindow()
  const before = used()
  const backend = new InMemoryBackend({ maxKeys })
  await backend.initialize()
  const started = performance.now()
  for (let i = 0; i < keys; i++) {
    // Each identifier is a fresh heap string, as a request's header or IP would be.
    backend.evaluate([{ strategy, key: keyOf(i), limit: 100, windowMs: 3_600_000, cost: 1 }], 'hit')
  }
  const elapsedMs = performance.now() - started
  const after = used()
  const held = backend.size
  console.log(JSON.stringify({ keys, maxKeys, held, bytes: after - before, bytesPerKey: (after - before) / held, keyStringBytes: keyBytes, nsPerInsert: elapsedMs * 1e6 / keys, heapAfter: process.memoryUsage().heapUsed }))
  await backend.close()
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
