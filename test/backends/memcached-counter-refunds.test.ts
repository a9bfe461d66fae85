/**
 * Memcached's counter path: a refund decrements the counter of the window its charge was made in,
 * `<key>:<floor(chargedAt / windowMs)>`, only while the strategy still reads that window. The
 * backend's clock is set by the test (memcached keeps no time a client can read, so decisions use
 * the app host's clock, which a subclass may replace), on a real memcached.
 */
import t from 'tap'
import { FixedWindow, MemcachedBackend, SlidingWindowCounter, type Decision } from '../../lib/index.js'
import type { EvaluateOp } from '../../lib/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { sharedMemcachedServers, uniqueNamespace } from '../../scripts/support/services.js'

const WINDOW_MS = 60_000
/** The start of a window, in the present so memcached's relative expirations hold. */
const W0 = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS

/** A MemcachedBackend whose clock the test sets. */
class SetClockMemcached extends MemcachedBackend {
  at = W0
  protected override now (): number {
    return this.at
  }
}

const backend = new SetClockMemcached(await sharedMemcachedServers(), { namespace: uniqueNamespace('counter-refund'), timeoutMs: 2000 })
await backend.initialize()
t.teardown(async () => { await backend.close() })

async function evaluate (strategy: Strategy, key: string, limit: number, cost: number, mode: 'hit' | 'refund', chargedAt?: number): Promise<Decision> {
  const op: EvaluateOp = { strategy, key, limit, windowMs: WINDOW_MS, cost, chargedAt }
  return (await backend.evaluate([op], mode))[0]!
}

t.test('decisions are stamped with the clock that named their window', async (t) => {
  backend.at = W0 + 1234
  t.equal((await evaluate(new FixedWindow(), 'stamp:{c}', 3, 1, 'hit')).decidedAt, W0 + 1234)
})

t.test('SlidingWindowCounter: a charge of the previous window comes off the previous counter; an older one is left alone', async (t) => {
  const swc = new SlidingWindowCounter()
  const key = 'swc:{c}'
  backend.at = W0 + 100
  t.equal((await evaluate(swc, key, 10, 3, 'hit')).allowed, true)
  backend.at = W0 + WINDOW_MS + 100
  t.equal((await evaluate(swc, key, 10, 2, 'hit')).remaining, 5, 'previous 3 weighs 3 × 59.9/60, current 2')
  const refunded = await evaluate(swc, key, 10, 3, 'refund', W0 + 100)
  t.equal(refunded.remaining, 8, 'the previous window\'s 3 are given back; the current 2 stay')
  backend.at = W0 + 2 * WINDOW_MS + 100
  t.equal((await evaluate(swc, key, 10, 2, 'refund', W0 + 100)).remaining, 8, 'two windows back: nothing (the previous 2 weigh 2 × 59.9/60)')
  t.equal((await evaluate(swc, key, 10, 0, 'hit')).remaining, 8, '...and no counter was touched')
})

t.test('FixedWindow: a charge of an ended window gives nothing back; a window ahead of a clock that stepped back does', async (t) => {
  const fw = new FixedWindow()
  const key = 'fw:{c}'
  backend.at = W0 + 100
  await evaluate(fw, key, 3, 3, 'hit')
  backend.at = W0 + WINDOW_MS + 100
  t.equal((await evaluate(fw, key, 3, 2, 'hit')).remaining, 1)
  t.equal((await evaluate(fw, key, 3, 3, 'refund', W0 + 100)).remaining, 1, 'the ended window\'s charge holds nothing')
  t.equal((await evaluate(fw, key, 3, 2, 'hit')).allowed, false, 'limit 3 never admits 4')
  // The clock steps back into the window before: the charge made ahead of it is still found.
  backend.at = W0 + 5_000
  await evaluate(fw, key, 3, 2, 'refund', W0 + WINDOW_MS + 100)
  backend.at = W0 + WINDOW_MS + 200
  t.equal((await evaluate(fw, key, 3, 3, 'hit')).remaining, 0, 'the window the charge was made in got its 2 back (3 fit again)')
})
