/**
 * Prints, per strategy, what a burst of 20 requests at '5/1s' gets at one instant on an
 * InMemoryBackend driven by a ManualClock: how many are admitted (and how many of those are held
 * for their turn), the Retry-After of the first rejected request (ms and header seconds), and
 * whether the same request succeeds after waiting exactly that long.
 *
 *   npx tsx scripts/strategy-table.ts
 */
import {
  FixedWindow, GCRA, InMemoryBackend, LeakyBucket, LeakyBucketWithQueue, ManualClock, SlidingWindowCounter,
  SlidingWindowLog, TokenBucket, TokenBucketWithDebt, parseRate
} from '../lib/index.js'
import type { Strategy } from '../types/strategy.js'
import { toSeconds } from '../lib/decision.js'

const RATE = '5/1s'
const BURST = 20
const START = 1_700_000_000_000 // aligned to the second

const strategies: Array<[string, Strategy]> = [
  ['FixedWindow', new FixedWindow()],
  ['SlidingWindowCounter', new SlidingWindowCounter()],
  ['SlidingWindowLog', new SlidingWindowLog()],
  ['TokenBucket', new TokenBucket()],
  ['TokenBucketWithDebt({ maxDebt: 2 })', new TokenBucketWithDebt({ maxDebt: 2 })],
  ['LeakyBucket', new LeakyBucket()],
  ['LeakyBucketWithQueue', new LeakyBucketWithQueue()],
  ['GCRA', new GCRA()]
]

const { limit, windowMs } = parseRate(RATE)
const rows: string[][] = [['strategy', 'allowed', 'of which delayed', 'retry-after (ms)', 'retry-after header (s)', 'after retryAfterMs', 'after header seconds']]

function attempt (backend: InMemoryBackend, strategy: Strategy, key: string): ReturnType<InMemoryBackend['evaluate']>[number] {
  return backend.evaluate([{ strategy, key, limit, windowMs, cost: 1 }], 'hit')[0]!
}

for (const [label, strategy] of strategies) {
  // Two identical clients: one waits the exact milliseconds, the other the header's whole seconds.
  const outcomes: string[] = []
  let allowed = 0
  let delayed = 0
  let retryMs = NaN
  for (const wait of ['ms', 'seconds'] as const) {
    const clock = new ManualClock(START)
    const backend = new InMemoryBackend({ clock })
    let firstRejection: number | undefined
    allowed = 0
    delayed = 0
    for (let i = 0; i < BURST; i++) {
      const decision = attempt(backend, strategy, 'client')
      if (decision.allowed) {
        allowed++
        if ((decision.delayMs ?? 0) > 0) delayed++
      } else firstRejection ??= decision.retryAfterMs
    }
    if (firstRejection === undefined) {
      outcomes.push('n/a')
      continue
    }
    retryMs = firstRejection
    clock.advance(wait === 'ms' ? firstRejection : toSeconds(firstRejection) * 1000)
    outcomes.push(attempt(backend, strategy, 'client').allowed ? 'yes' : 'NO')
  }
  rows.push([label, String(allowed), String(delayed), String(retryMs), String(toSeconds(retryMs)), ...outcomes])
}

const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
const line = (row: string[]): string => `| ${row.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`
console.log(`Burst of ${BURST} requests at '${RATE}', one instant, InMemoryBackend + ManualClock\n`)
console.log(line(rows[0]!))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const row of rows.slice(1)) console.log(line(row))
