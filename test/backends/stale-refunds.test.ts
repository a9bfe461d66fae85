/**
 * A refund gives back only what its charge still holds, on every built-in backend. The scenario:
 * charge cost 3 at t, let that charge lapse (its window ends, it leaves the log, the bucket
 * refills), spend 2, then refund the old charge with `chargedAt` = t. Nothing may come back, so
 * a further 2 is rejected for a limit of 3. Before refunds knew their charge's time, the refund
 * gave back the 2 new units and the limit of 3 admitted 4.
 *
 * InMemory runs on a ManualClock. Redis and Memcached keep their own time, so those runs use a
 * 600 ms window and real time; a run whose steps straddle a boundary they must not cross (a
 * loaded machine) proves nothing and is repeated on a fresh key.
 */
import t, { type Test } from 'tap'
import {
  FixedWindow, InMemoryBackend, ManualClock, MemcachedBackend, RedisBackend, SlidingWindowLog, TokenBucket,
  type Decision, type ThrottleBackend
} from '../../lib/index.js'
import type { EvaluateOp } from '../../lib/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const WINDOW_MS = 600
const LIMIT = 3

interface Case {
  readonly label: string
  readonly strategy: Strategy
  /** Whether the last hit, decided at `last`, must still see the 2 units spent at `spent`. */
  readonly stillBinding: (spent: number, last: number) => boolean
}

const windowOf = (at: number): number => Math.floor(at / WINDOW_MS)

const CASES: readonly Case[] = [
  // The 2 units count until their window ends.
  { label: 'FixedWindow', strategy: new FixedWindow(), stillBinding: (spent, last) => windowOf(spent) === windowOf(last) },
  // The 2 units count for WINDOW_MS after they were logged.
  { label: 'SlidingWindowLog', strategy: new SlidingWindowLog(), stillBinding: (spent, last) => last - spent < WINDOW_MS },
  // One token comes back every 200 ms: a hit of 2 needs one more token than the bucket holds.
  { label: 'TokenBucket', strategy: new TokenBucket(), stillBinding: (spent, last) => last - spent < WINDOW_MS / LIMIT }
]

/** A decision and when it was made: the backend's stamp, or the host's clock when it stamps none. */
type Timed = Decision & { at: number }

interface Run {
  first: Timed
  second: Timed
  refund: Timed
  last: Timed
}

async function evaluateOne (backend: ThrottleBackend, op: EvaluateOp, mode: 'hit' | 'refund'): Promise<Timed> {
  const decision = (await backend.evaluate([op], mode))[0]!
  return { ...decision, at: decision.decidedAt ?? Date.now() }
}

/**
 * Runs the scenario on `key`. `pass()` lets the charge lapse: advances a manual clock, or sleeps
 * on a real one.
 */
async function scenario (backend: ThrottleBackend, strategy: Strategy, key: string, pass: () => Promise<void>): Promise<Run> {
  const op = (cost: number, chargedAt?: number): EvaluateOp => ({ strategy, key, limit: LIMIT, windowMs: WINDOW_MS, cost, chargedAt })
  const first = await evaluateOne(backend, op(3), 'hit')
  await pass()
  const second = await evaluateOne(backend, op(2), 'hit')
  const refund = await evaluateOne(backend, op(3, first.at), 'refund')
  const last = await evaluateOne(backend, op(2), 'hit')
  return { first, second, refund, last }
}

function assertRun (t: Test, run: Run, label: string): void {
  t.equal(run.first.allowed, true, `${label}: the charge of 3 is admitted`)
  t.equal(run.second.allowed, true, `${label}: once it lapsed, 2 more are admitted`)
  t.equal(run.refund.allowed, true, `${label}: a refund answers allowed`)
  t.equal(run.refund.remaining, 1, `${label}: the refund of the lapsed charge gave nothing back`)
  t.equal(run.last.allowed, false, `${label}: a further 2 is rejected (limit 3, 2 already spent)`)
}

t.test('InMemory: refunding a lapsed charge gives nothing back', async (t) => {
  for (const { label, strategy } of CASES) {
    // Aligned to the window, so the charge sits at the start of its window.
    const start = 1_700_000_000_000 - (1_700_000_000_000 % WINDOW_MS)
    const clock = new ManualClock(start)
    const backend = new InMemoryBackend({ clock })
    const run = await scenario(backend, strategy, 'stale:{client}', async () => { clock.advance(WINDOW_MS + 50) })
    t.equal(run.first.decidedAt, start, `${label}: the charge is stamped with the backend's time`)
    assertRun(t, run, label)
  }
})

/**
 * The scenario on a backend with its own clock, repeated on a fresh key when the steps that must
 * stay together (the spend of 2 and the last hit) drifted apart.
 */
async function realTime (t: Test, backend: ThrottleBackend, name: string): Promise<void> {
  for (const { label, strategy, stillBinding } of CASES) {
    let run: Run | undefined
    let attempts = 0
    for (; attempts < 20 && run === undefined; attempts++) {
      const candidate = await scenario(backend, strategy, `stale-${label}-${attempts}:{client}`, async () => {
        // A whole window after the charge: its window is over, its log entry gone, the bucket full.
        await new Promise((resolve) => setTimeout(resolve, WINDOW_MS + 20))
      })
      const lapsed = candidate.second.at - candidate.first.at >= WINDOW_MS
      if (lapsed && stillBinding(candidate.second.at, candidate.last.at)) run = candidate
    }
    if (run === undefined) {
      t.fail(`${name} ${label}: no run kept its steps together in 20 attempts`)
      continue
    }
    t.comment(`${name} ${label}: ${attempts} attempt(s)`)
    t.type(run.first.decidedAt, 'number', `${name} ${label}: the charge is stamped with the backend's time`)
    assertRun(t, run, `${name} ${label}`)
  }
}

t.test('Redis: refunding a lapsed charge gives nothing back', async (t) => {
  const backend = new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace('stale'), timeoutMs: 2000 })
  await backend.initialize()
  t.teardown(async () => { await backend.reset(); await backend.close() })
  await realTime(t, backend, 'Redis')
})

t.test('Memcached: refunding a lapsed charge gives nothing back', async (t) => {
  const backend = new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace('stale'), timeoutMs: 2000 })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  await realTime(t, backend, 'Memcached')
})
