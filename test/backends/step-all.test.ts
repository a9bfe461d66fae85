/**
 * stepAll, the pure transition of one call's limits that InMemoryBackend and the generic locked
 * evaluate share: the all-or-nothing rule, decidedAt stamps, and chargedAt handed to refunds.
 */
import t from 'tap'
import { commits, stepAll } from '../../lib/backends/step-all.js'
import { FixedWindow, InMemoryBackend, ManualClock } from '../../lib/index.js'
import type { EvaluateOp, StepResult, Strategy, StrategyState } from '../../lib/backend.js'

const fixedWindow = new FixedWindow()
const NOW = 1_700_000_000_000
const op = (key: string, limit: number, cost = 1, strategy: Strategy = fixedWindow): EvaluateOp => ({ strategy, key, limit, windowMs: 60_000, cost })

/** FixedWindow, remembering the `chargedAt` of every refund it is asked for. */
class RecordingWindow extends FixedWindow {
  readonly chargedAts: Array<number | undefined> = []
  override refund (state: StrategyState | undefined, now: number, limit: number, windowMs: number, cost: number, chargedAt?: number): StepResult {
    this.chargedAts.push(chargedAt)
    return super.refund(state, now, limit, windowMs, cost)
  }
}

t.test('commits: refunds always, hits only when every limit allows, checks never', async (t) => {
  t.equal(commits('refund', false), true)
  t.equal(commits('hit', true), true)
  t.equal(commits('hit', false), false)
  t.equal(commits('check', true), false)
})

t.test('a hit commits only when every limit allows, and answers every limit either way', async (t) => {
  const full: StrategyState = [Math.floor(NOW / 60_000) * 60_000, 2]
  const admitted = stepAll([op('a', 5), op('b', 5)], [undefined, undefined], NOW, 'hit')
  t.equal(admitted.commit, true)
  t.same(admitted.decisions.map((d) => d.remaining), [4, 4])
  const rejected = stepAll([op('a', 5), op('b', 2)], [undefined, full], NOW, 'hit')
  t.equal(rejected.commit, false, 'one rejection: nothing is stored')
  t.same(rejected.decisions.map((d) => d.allowed), [true, false], 'both limits answer')
  t.same(rejected.results.map((r) => r?.decision.allowed), [true, false])
  t.equal(stepAll([op('a', 5)], [undefined], NOW, 'check').commit, false, 'a check stores nothing')
})

t.test('decisions of hits and checks are stamped with the time they were decided at', async (t) => {
  for (const mode of ['hit', 'check'] as const) {
    const { decisions } = stepAll([op('a', 5), op('b', 1, 2)], [undefined, undefined], NOW, mode)
    t.same(decisions.map((d) => d.decidedAt), [NOW, NOW], `${mode}: allowed and rejected alike`)
  }
  const clock = new ManualClock(NOW)
  const backend = new InMemoryBackend({ clock })
  t.equal(backend.evaluate([op('one', 5)], 'hit')[0]!.decidedAt, NOW, "InMemory's one-limit path, on its clock")
  clock.advance(5)
  t.same(backend.evaluate([op('one', 5), op('two', 5)], 'hit').map((d) => d.decidedAt), [NOW + 5, NOW + 5], 'and its several-limit path')
})

t.test('refunds get the charge time as the strategy\'s sixth argument; a strategy without refund is left as it is', async (t) => {
  const recording = new RecordingWindow()
  const state: StrategyState = [Math.floor(NOW / 60_000) * 60_000, 3]
  const noRefund: Strategy = { ...fixedWindow, name: 'no-refund', step: fixedWindow.step.bind(fixedWindow), encode: fixedWindow.encode.bind(fixedWindow), decode: fixedWindow.decode.bind(fixedWindow), refund: undefined }
  const { results, decisions, commit } = stepAll(
    [{ ...op('a', 5, 1, recording), chargedAt: NOW - 10 }, op('b', 5, 1, recording), op('c', 5, 1, noRefund)],
    [state, state, state], NOW, 'refund')
  t.equal(commit, true)
  t.same(recording.chargedAts, [NOW - 10, undefined], 'chargedAt as given, absent when the op has none')
  t.equal(results[2], null, 'nothing to store for a strategy without refund')
  t.same(decisions[2], { allowed: true, limit: 5, remaining: 5, resetMs: 0, retryAfterMs: 0 }, 'it answers untouched')

  const backend = new InMemoryBackend({ clock: new ManualClock(NOW) })
  backend.evaluate([op('k', 5, 1, recording)], 'hit')
  backend.evaluate([{ ...op('k', 5, 1, recording), chargedAt: NOW - 1 }], 'refund')
  backend.evaluate([{ ...op('k', 5, 1, recording), chargedAt: NOW - 2 }, op('k2', 5, 1, recording)], 'refund')
  t.same(recording.chargedAts.slice(2), [NOW - 1, NOW - 2, undefined], 'InMemory hands it over on both paths')
})
