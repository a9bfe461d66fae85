/**
 * Boundary tests of the strategies' pure steps: options validation, window edges, sub-second and
 * non-integer emission intervals, costs beyond the capacity, long idleness, clocks stepping back,
 * corrupt stored states, queueing delays, refunds of charges made earlier and the
 * SlidingWindowCounter counter plan.
 */
import fc from 'fast-check'
import t from 'tap'
import {
  FixedWindow, GCRA, LeakyBucket, LeakyBucketWithQueue, SlidingWindowCounter, SlidingWindowLog,
  TokenBucket, TokenBucketWithDebt
} from '../../lib/index.js'
import type { Decision } from '../../types/decision.js'
import type { Strategy, StrategyState } from '../../types/strategy.js'

const T0 = 1_700_000_000_000 // aligned to 1 s, 500 ms, 100 ms windows

/** Drives a strategy like a backend in 'hit' mode: stores the state only when allowed. */
class Driver {
  state: StrategyState | undefined
  constructor (readonly strategy: Strategy, readonly limit: number, readonly windowMs: number) {}
  hit (now: number, cost = 1): Decision {
    const result = this.strategy.step(this.state, now, this.limit, this.windowMs, cost)
    if (result.decision.allowed) this.state = result.state ?? undefined
    return result.decision
  }

  check (now: number, cost = 1): Decision {
    return this.strategy.step(this.state, now, this.limit, this.windowMs, cost).decision
  }
}

const ALL: Array<[string, () => Strategy]> = [
  ['FixedWindow', () => new FixedWindow()],
  ['SlidingWindowCounter', () => new SlidingWindowCounter()],
  ['SlidingWindowLog', () => new SlidingWindowLog()],
  ['TokenBucket', () => new TokenBucket()],
  ['TokenBucketWithDebt', () => new TokenBucketWithDebt()],
  ['LeakyBucket', () => new LeakyBucket()],
  ['LeakyBucketWithQueue', () => new LeakyBucketWithQueue()],
  ['GCRA', () => new GCRA()]
]

t.test('every strategy constructs without arguments and has a kebab-case name and a Lua twin', async (t) => {
  for (const [label, make] of ALL) {
    const strategy = make()
    t.match(strategy.name, /^[a-z]+(-[a-z]+)*$/, label)
    t.match(strategy.lua, /return function\(raw, now, limit, window, cost, refund, charged_at\)/, `${label} Lua twin`)
    t.notMatch(strategy.lua, /redis\.call/, `${label} twin is a pure function`)
  }
})

t.test('bad options fail at construction with TRAFFIK_ERR_INVALID_OPTION naming option and value', async (t) => {
  const cases: Array<[() => unknown, RegExp]> = [
    [() => new TokenBucket({ burst: 0 }), /'burst'.*\(got 0\)/],
    [() => new TokenBucket({ burst: 1.5 }), /'burst'.*\(got 1\.5\)/],
    [() => new TokenBucket({ burst: '3' as unknown as number }), /'burst'.*\(got "3"\)/],
    [() => new TokenBucket({ brust: 3 } as never), /'brust'.*burst.*\(got 3\)/],
    [() => new TokenBucket(null as never), /TokenBucket options.*\(got null\)/],
    [() => new TokenBucket([] as never), /TokenBucket options/],
    [() => new TokenBucketWithDebt({ maxDebt: -1 }), /'maxDebt'.*\(got -1\)/],
    [() => new TokenBucketWithDebt({ burst: Infinity }), /'burst'.*\(got Infinity\)/],
    [() => new LeakyBucket({ burst: -2 }), /'burst'.*\(got -2\)/],
    [() => new GCRA({ burst: NaN }), /'burst'.*\(got NaN\)/],
    [() => new LeakyBucketWithQueue({ maxDelayMs: -1 }), /'maxDelayMs'.*\(got -1\)/],
    [() => new LeakyBucketWithQueue({ maxDelayMs: 2.5 }), /'maxDelayMs'.*\(got 2\.5\)/],
    [() => new SlidingWindowCounter({ burst: 2 } as never), /'burst'.*SlidingWindowCounter knows no options/],
    [() => new SlidingWindowLog('x' as never), /SlidingWindowLog options/]
  ]
  for (const [build, message] of cases) {
    t.throws(build, { code: 'TRAFFIK_ERR_INVALID_OPTION', message })
  }
  t.equal(new LeakyBucketWithQueue().maxDelayMs, 1000, 'documented default maxDelayMs')
  t.equal(new LeakyBucketWithQueue({ maxDelayMs: 0 }).maxDelayMs, 0)
  t.equal(new GCRA().burst, 1, 'GCRA: no burst by default')
  t.equal(new LeakyBucket().burst, 1, 'LeakyBucket: no burst by default')
  t.equal(new TokenBucket().burst, undefined, 'TokenBucket: burst follows the limit')
  t.equal(new TokenBucketWithDebt().maxDebt, 0)
})

t.test('burst defaults: token buckets spend the whole limit at once, GCRA and LeakyBucket space requests', async (t) => {
  const admitted = (strategy: Strategy): number => {
    const d = new Driver(strategy, 5, 1000)
    let n = 0
    for (let i = 0; i < 20; i++) if (d.hit(T0).allowed) n++
    return n
  }
  t.equal(admitted(new TokenBucket()), 5)
  t.equal(admitted(new TokenBucketWithDebt()), 5)
  t.equal(admitted(new TokenBucketWithDebt({ maxDebt: 3 })), 8, 'lends up to maxDebt beyond')
  t.equal(admitted(new GCRA()), 1)
  t.equal(admitted(new LeakyBucket()), 1)
  t.equal(admitted(new GCRA({ burst: 3 })), 3)
  t.equal(admitted(new LeakyBucket({ burst: 4 })), 4)
  t.equal(admitted(new TokenBucket({ burst: 2 })), 2)
})

t.test('window edges: the last millisecond of a window and the first of the next', async (t) => {
  for (const strategy of [new FixedWindow(), new SlidingWindowLog()]) {
    const d = new Driver(strategy, 2, 1000)
    t.ok(d.hit(T0).allowed)
    t.ok(d.hit(T0).allowed)
    const rejected = d.hit(T0 + 999)
    t.notOk(rejected.allowed, `${strategy.name}: still full at the last ms`)
    t.equal(rejected.retryAfterMs, 1)
    t.ok(d.hit(T0 + 1000).allowed, `${strategy.name}: free at the window end`)
  }
  // SlidingWindowCounter: 2 in the previous window weigh 2·(1000 − e)/1000.
  const swc = new Driver(new SlidingWindowCounter(), 2, 1000)
  swc.hit(T0)
  swc.hit(T0)
  const atBoundary = swc.hit(T0 + 1000)
  t.notOk(atBoundary.allowed, 'the previous window weighs in full at its end')
  t.equal(atBoundary.retryAfterMs, 500, 'weight 2·0.5 = 1 leaves room for one at +500 ms')
  t.notOk(swc.check(T0 + 1499).allowed)
  t.ok(swc.hit(T0 + 1500).allowed)
  t.equal(swc.check(T0 + 1500).retryAfterMs, 500, 'the one just admitted and the decayed previous fill the estimate until the previous is gone')
})

t.test("sub-second windows: '200/500ms' and '2/500ms'", async (t) => {
  for (const [label, make] of ALL.filter(([name]) => !['GCRA', 'LeakyBucket', 'LeakyBucketWithQueue'].includes(name))) {
    const d = new Driver(make(), 200, 500)
    let n = 0
    for (let i = 0; i < 250; i++) if (d.hit(T0).allowed) n++
    t.equal(n, 200, `${label}: 200 in one burst`)
    const rejected = d.hit(T0)
    t.notOk(rejected.allowed)
    // a token every 2.5 ms; windows reset after 500 ms; the sliding estimate needs 200·(500 − t)/500 <= 199
    const expected = label.startsWith('Token') ? 3 : label === 'SlidingWindowCounter' ? 503 : 500
    t.equal(rejected.retryAfterMs, expected, `${label}: retry on the sub-second scale`)
    t.notOk(d.hit(T0 + expected - 1).allowed)
    t.ok(d.hit(T0 + expected).allowed, `${label}: allowed after exactly retryAfterMs`)
  }
  const gcra = new Driver(new GCRA(), 2, 500)
  t.ok(gcra.hit(T0).allowed)
  const r = gcra.hit(T0)
  t.same([r.allowed, r.retryAfterMs], [false, 250], 'one per 250 ms')
  t.notOk(gcra.hit(T0 + 249).allowed)
  t.ok(gcra.hit(T0 + 250).allowed)
})

t.test('non-integer emission intervals stay exact (3 per 1000 ms: one every 333.3 ms)', async (t) => {
  for (const strategy of [new GCRA(), new LeakyBucket()]) {
    const d = new Driver(strategy, 3, 1000)
    t.ok(d.hit(T0).allowed)
    const first = d.hit(T0)
    t.equal(first.retryAfterMs, 334, `${strategy.name}: ceil(333.3)`)
    t.notOk(d.hit(T0 + 333).allowed)
    t.ok(d.hit(T0 + 334).allowed)
    t.equal(d.check(T0 + 334).retryAfterMs, 334, 'a late arrival earns no credit without burst: next due at 667.3')
    t.notOk(d.hit(T0 + 667).allowed)
    t.ok(d.hit(T0 + 668).allowed)
  }
  // With burst, lateness is credited exactly: no drift from rounding.
  const tb = new Driver(new TokenBucket(), 3, 1000)
  for (let i = 0; i < 3; i++) tb.hit(T0)
  t.equal(tb.check(T0, 3).retryAfterMs, 1000, 'a full refill of 3 takes exactly one window')
  t.equal(tb.check(T0, 1).retryAfterMs, 334)
  t.ok(tb.hit(T0 + 334).allowed)
  t.notOk(tb.hit(T0 + 666).allowed, '1.998 tokens spent... 0.998 left at 666')
  t.ok(tb.hit(T0 + 667).allowed)
  t.notOk(tb.hit(T0 + 999).allowed)
  t.ok(tb.hit(T0 + 1000).allowed, 'the third token is back at exactly 1000 ms')
})

t.test('a cost above the capacity is rejected with retryAfterMs -1, consuming nothing', async (t) => {
  const cases: Array<[Strategy, number]> = [
    [new FixedWindow(), 6], [new SlidingWindowCounter(), 6], [new SlidingWindowLog(), 6], [new TokenBucket(), 6],
    [new TokenBucket({ burst: 2 }), 3], [new TokenBucketWithDebt({ maxDebt: 2 }), 8], [new LeakyBucket(), 2],
    [new LeakyBucket({ burst: 3 }), 4], [new GCRA(), 2], [new LeakyBucketWithQueue({ maxDelayMs: 1000 }), 7]
  ]
  for (const [strategy, cost] of cases) {
    const result = strategy.step(undefined, T0, 5, 1000, cost)
    t.same([result.decision.allowed, result.decision.retryAfterMs], [false, -1], `${strategy.name} cost ${cost}`)
    const just = strategy.step(undefined, T0, 5, 1000, cost - 1)
    t.ok(just.decision.allowed, `${strategy.name} cost ${cost - 1} fits a fresh client`)
  }
})

t.test('idle for many windows restores capacity exactly, with no overflow', async (t) => {
  for (const [label, make] of ALL) {
    const strategy = make()
    const d = new Driver(strategy, 7, 999)
    for (let i = 0; i < 10; i++) d.hit(T0 + i)
    const later = T0 + 10 ** 12 // ~31 years
    const fresh = strategy.step(undefined, later, 7, 999, 1)
    const afterIdle = strategy.step(d.state, later, 7, 999, 1)
    t.same(afterIdle.decision, fresh.decision, `${label}: same as a fresh client`)
    t.same(afterIdle.state, fresh.state, `${label}: same state as a fresh client`)
  }
})

t.test('a clock that steps back neither crashes nor over-admits', async (t) => {
  for (const [label, make] of ALL) {
    const d = new Driver(make(), 3, 1000)
    let before = 0
    for (let i = 0; i < 10; i++) if (d.hit(T0 + 500).allowed) before++
    let after = 0
    for (const back of [1, 100, 499, 5000, 86_400_000]) {
      const decision = d.hit(T0 + 500 - back)
      if (decision.allowed) after++
      for (const value of [decision.remaining, decision.resetMs, decision.retryAfterMs]) t.ok(Number.isSafeInteger(value))
      t.ok(decision.remaining >= 0 && decision.remaining <= 3)
    }
    t.equal(after, 0, `${label}: nothing more admitted in the past (admitted ${before} at T0+500)`)
    t.ok(d.hit(T0 + 500 + 60_000).allowed, `${label}: time moving on restores capacity`)
  }
})

t.test('corrupt stored states decode to undefined (treated as absent)', async (t) => {
  const garbage = ['', 'abc', '1,,2', ',', '1,2,', 'NaN,1', 'Infinity,1', '1e400,1', ' 1,2', '0x10,1', '1;2']
  for (const [label, make] of ALL) {
    const strategy = make()
    for (const raw of garbage) {
      if (raw === '' && strategy.name === 'sliding-window-log') continue // the empty log
      t.equal(strategy.decode(raw), undefined, `${label} rejects ${JSON.stringify(raw)}`)
    }
  }
  const bucket = new TokenBucket()
  t.equal(bucket.decode('1.5,2'), undefined, 'fractional times are not ours')
  t.equal(bucket.decode('5,-1'), undefined, 'negative ticks')
  t.same(bucket.decode('1700000000000,3'), [1_700_000_000_000, 3])
  const log = new SlidingWindowLog()
  t.equal(log.decode('5,1,3,1'), undefined, 'timestamps must increase')
  t.equal(log.decode('5,1,6'), undefined, 'pairs')
  t.same(log.decode(''), [], 'the empty log')
  t.same(log.decode('5,1,6,2'), [5, 1, 6, 2])
  const swc = new SlidingWindowCounter()
  t.equal(swc.decode('1000,-1,0'), undefined)
  t.same(swc.decode('1000,1,2'), [1000, 1, 2])
  t.equal(new FixedWindow().decode('1000,-1'), undefined)
  t.equal(new FixedWindow().decode('1000.5,1'), undefined)
  // Written by the Lua fmt for values beyond 2^53: still readable.
  t.same(new FixedWindow().decode('1e+17,1'), [1e17, 1])
})

t.test('GCRA and LeakyBucket report a bounded, correct remaining (not Traffik\'s unbounded stat)', async (t) => {
  for (const strategy of [new GCRA(), new LeakyBucket(), new GCRA({ burst: 4 })]) {
    const capacity = strategy.name === 'gcra' && (strategy as GCRA).burst === 4 ? 4 : 1
    const fresh = strategy.step(undefined, T0, 10, 1000, 0).decision
    t.same([fresh.allowed, fresh.remaining, fresh.resetMs], [true, capacity, 0], `${strategy.name}: a fresh key has its burst`)
    const d = new Driver(strategy, 10, 1000)
    d.hit(T0)
    const idle = strategy.step(d.state, T0 + 1500, 10, 1000, 0).decision
    t.equal(idle.remaining, capacity, 'long idleness does not inflate remaining')
  }
})

t.test('decision.limit is the configured limit; remaining is clamped to it even with a larger burst', async (t) => {
  const d = new Driver(new TokenBucket({ burst: 10 }), 5, 1000)
  const first = d.hit(T0)
  t.same([first.limit, first.remaining], [5, 5], '9 tokens left, reported as 5')
  let n = 1
  while (d.hit(T0).allowed) n++
  t.equal(n, 10, 'the burst is 10')
})

t.test('TokenBucketWithDebt: lends maxDebt, reports time until full and exact waits', async (t) => {
  const d = new Driver(new TokenBucketWithDebt({ maxDebt: 2 }), 5, 1000)
  for (let i = 0; i < 7; i++) t.ok(d.hit(T0).allowed)
  const rejected = d.hit(T0)
  t.same([rejected.allowed, rejected.remaining, rejected.retryAfterMs, rejected.resetMs], [false, 0, 200, 1400])
  t.ok(d.hit(T0 + 200).allowed)
})

t.test('LeakyBucketWithQueue admits with delays up to maxDelayMs, like limit_req without nodelay', async (t) => {
  const d = new Driver(new LeakyBucketWithQueue({ maxDelayMs: 1000 }), 5, 1000)
  const delays = []
  for (let i = 0; i < 6; i++) {
    const decision = d.hit(T0)
    t.ok(decision.allowed)
    delays.push(decision.delayMs)
  }
  t.same(delays, [0, 200, 400, 600, 800, 1000], 'one every 200 ms')
  const full = d.hit(T0)
  t.same([full.allowed, full.retryAfterMs, full.delayMs], [false, 200, 0], 'the queue is full: retry when a slot frees')
  const later = d.hit(T0 + 200)
  t.same([later.allowed, later.delayMs], [true, 1000])
  // Cost: a request of cost 3 waits for its last unit.
  const q = new Driver(new LeakyBucketWithQueue({ maxDelayMs: 1000 }), 5, 1000)
  t.equal(q.hit(T0, 3).delayMs, 400)
  t.equal(q.hit(T0, 1).delayMs, 600)
  // Refund gives the slot back.
  const strategy = new LeakyBucketWithQueue()
  const charged = strategy.step(undefined, T0, 5, 1000, 1)
  const second = strategy.step(charged.state!, T0, 5, 1000, 1)
  t.equal(second.decision.delayMs, 200)
  const refunded = strategy.refund(second.state!, T0, 5, 1000, 1)
  t.equal(strategy.step(refunded.state!, T0, 5, 1000, 1).decision.delayMs, 200, 'the refunded slot is taken by the next request')
})

/** The decision and the state a refund leaves. */
function refund (strategy: Strategy, state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt?: number): [Decision, StrategyState | null] {
  const result = strategy.refund!(state, now, limit, windowMs, cost, chargedAt)
  return [result.decision, result.state]
}

t.test('FixedWindow refunds: only to the window that was charged, while it is the stored one', async (t) => {
  const fw = new FixedWindow()
  const [inWindow, kept] = refund(fw, [T0, 4], T0 + 999, 5, 1000, 3, T0)
  t.same([inWindow.remaining, kept], [4, [T0, 1]], 'a charge of this window comes back, up to its last millisecond')
  t.same(refund(fw, [T0 + 1000, 2], T0 + 1000, 5, 1000, 3, T0)[1], [T0 + 1000, 2], 'a charge of the window before: nothing (the new window is left as it is)')
  t.same(refund(fw, [T0 + 1000, 2], T0 + 1000, 5, 1000, 3)[1], [T0 + 1000, 0], 'without chargedAt the charge is taken as made now')
  t.same(refund(fw, [T0 + 1000, 2], T0 + 500, 5, 1000, 2, T0 + 1000)[1], [T0 + 1000, 0], 'a window ahead of a clock that stepped back: its own charges come back')
  t.same(refund(fw, [T0 + 1000, 2], T0 + 500, 5, 1000, 2, T0 + 500)[1], [T0 + 1000, 2], '...but not one stamped in the window the clock is back in')
  t.same(refund(fw, [T0, 4], T0 + 1000, 5, 1000, 3, T0)[1], null, 'the stored window is over: nothing counts any more')
})

t.test('SlidingWindowCounter refunds: the current counter, the previous one, or nothing', async (t) => {
  const swc = new SlidingWindowCounter()
  const state = [T0 + 1000, 2, 4]
  t.same(refund(swc, state, T0 + 1500, 10, 1000, 1, T0 + 1200)[1], [T0 + 1000, 1, 4], 'a charge of the current window')
  t.same(refund(swc, state, T0 + 1500, 10, 1000, 3, T0 + 999)[1], [T0 + 1000, 2, 1], 'a charge of the previous window, which still weighs')
  t.same(refund(swc, state, T0 + 1500, 10, 1000, 3, T0 - 1)[1], state, 'a charge two windows back: nothing')
  t.same(refund(swc, state, T0 + 1500, 10, 1000, 5, T0 + 1500)[1], [T0 + 1000, 0, 4], 'never spills into the other window')
  t.same(refund(swc, [T0, 3, 0], T0 + 1000, 10, 1000, 2, T0 + 10)[1], [T0 + 1000, 0, 1], 'the window that just ended is now the previous one')
})

t.test('SlidingWindowLog refunds: only the entry of the charge, while it is in the log', async (t) => {
  const swl = new SlidingWindowLog()
  const log = [T0, 2, T0 + 300, 1, T0 + 600, 3]
  t.same(refund(swl, log, T0 + 700, 10, 1000, 2, T0)[1], [T0 + 300, 1, T0 + 600, 3], 'the oldest entry, still in the window')
  t.same(refund(swl, log, T0 + 700, 10, 1000, 1, T0 + 600)[1], [T0, 2, T0 + 300, 1, T0 + 600, 2], 'part of a merged entry')
  t.same(refund(swl, log, T0 + 1000, 10, 1000, 2, T0)[1], [T0 + 300, 1, T0 + 600, 3], 'an entry that left the log: nothing, and no other entry pays for it')
  t.same(refund(swl, log, T0 + 700, 10, 1000, 2, T0 + 700)[1], log, 'no entry at chargedAt (a charge of cost 0, or logged later by a clock that stepped back): nothing')
  const [decision] = refund(swl, log, T0 + 700, 10, 1000, 5, T0 + 300)
  t.equal(decision.remaining, 5, 'never more than the entry holds')
})

t.test('bucket refunds: the cost less the drain since the charge, never beyond a full bucket', async (t) => {
  // 10 per second: one unit drains every 100 ms.
  for (const strategy of [new TokenBucket(), new GCRA({ burst: 10 }), new LeakyBucket({ burst: 10 })]) {
    const first = strategy.step(undefined, T0, 10, 1000, 3)
    const second = strategy.step(first.state!, T0, 10, 1000, 4)
    t.equal(second.decision.remaining, 3, `${strategy.name}: 7 spent`)
    t.equal(refund(strategy, second.state!, T0, 10, 1000, 3, T0)[0].remaining, 6, `${strategy.name}: at once, the whole charge`)
    t.equal(refund(strategy, second.state!, T0 + 150, 10, 1000, 3, T0)[0].remaining, 6, `${strategy.name}: 150 ms later, 1.5 of 3 units (4.5 + 1.5 left: 6)`)
    t.equal(refund(strategy, second.state!, T0 + 300, 10, 1000, 3, T0)[0].remaining, 6, `${strategy.name}: 300 ms later, nothing (the drain restored it)`)
    t.equal(refund(strategy, second.state!, T0 + 250, 10, 1000, 3, T0 + 100)[0].remaining, 7, `${strategy.name}: a charge made later holds more`)
    t.equal(refund(strategy, second.state!, T0 - 50, 10, 1000, 3, T0)[0].remaining, 5, `${strategy.name}: clock stepped back 50 ms: all 3 units, never more`)
    t.equal(refund(strategy, second.state!, T0 + 650, 10, 1000, 9, T0 + 650)[0].remaining, 10, `${strategy.name}: never beyond a full bucket`)
  }
  // A queued request: its cost less what the queue drained since it was admitted.
  const queue = new LeakyBucketWithQueue()
  const served = queue.step(undefined, T0, 5, 1000, 1)
  const held = queue.step(served.state!, T0, 5, 1000, 1)
  t.equal(held.decision.delayMs, 200)
  t.equal(queue.step(refund(queue, held.state!, T0 + 100, 5, 1000, 1, T0)[1]!, T0 + 100, 5, 1000, 1).decision.delayMs, 200, '100 ms after admission, half a slot comes back (200 ms of wait, not 300)')
})

t.test('TTLs are whole milliseconds covering exactly the time the state matters', async (t) => {
  const fw = new FixedWindow().step(undefined, T0 + 250, 5, 500, 1)
  t.equal(fw.ttlMs, 250, 'sub-second: not truncated to whole seconds')
  const gcra = new GCRA().step(undefined, T0, 3, 1000, 1)
  t.equal(gcra.ttlMs, 334, 'the bucket drains empty at 333.3 ms')
  const swc = new SlidingWindowCounter().step(undefined, T0 + 100, 5, 1000, 1)
  t.equal(swc.ttlMs, 1900, 'the count weighs until the end of the next window')
  const swl = new SlidingWindowLog().step(undefined, T0 + 100, 5, 1000, 1)
  t.equal(swl.ttlMs, 1000)
})

t.test('SlidingWindowCounter: the counter plan decides exactly like step', async (t) => {
  const strategy = new SlidingWindowCounter()
  const plan = strategy.counter
  t.same(plan.windows, [0, -1])
  let runs = 0
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 25 }),
    fc.integer({ min: 1, max: 20 }), fc.constantFrom(1, 7, 100, 500, 1000, 60_000), fc.integer({ min: 0, max: 10 ** 9 }),
    (current, previous, cost, limit, windowMs, offset) => {
      runs++
      const now = T0 + offset
      const start = now - (now % windowMs)
      const state = current + previous === 0 ? undefined : [start, current, previous]
      const viaStep = strategy.step(state, now, limit, windowMs, cost).decision
      const viaCounter = plan.decide([current + cost, previous], now, limit, windowMs, cost)
      if (JSON.stringify(viaStep) !== JSON.stringify(viaCounter)) throw new Error(`${JSON.stringify({ viaStep, viaCounter })}`)
      const ttl = plan.ttlMs(now, windowMs)
      if (ttl !== start + 2 * windowMs - now) throw new Error('counter ttl must reach the end of the next window')
    }), { numRuns: 1000 })
  t.comment(`counter plan: ${runs} cases`)
  t.pass()
})
