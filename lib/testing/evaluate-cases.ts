/**
 * The atomic entry point, `evaluate`, for every strategy: the same answers as an exact reference
 * (hit, check and refund modes, costs; refunds of earlier charges with their `chargedAt`), admitted
 * hits stamped with `decidedAt`, no over-admission under concurrent hits, and all-or-nothing
 * decisions over several limits, also under concurrency.
 */
import assert from 'node:assert/strict'
import type { Decision } from '../../types/decision.js'
import type { Strategy } from '../../types/strategy.js'
import type { EvaluateMode, EvaluateOp, ThrottleBackend } from '../backends/throttle-backend.js'
import { FixedWindow } from '../strategies/index.js'
import { essence, LONG_WINDOW_MS, referenceDecisions, scriptOps, type ConformanceCase, type ScriptStep } from './harness.js'

const counter = new FixedWindow()

function op (strategy: Strategy, key: string, limit: number, cost = 1): EvaluateOp {
  return { strategy, key, limit, windowMs: LONG_WINDOW_MS, cost }
}

/** Runs `steps` one after the other and compares every decision with the reference's. */
async function assertScript (backend: ThrottleBackend, steps: readonly ScriptStep[], label: string): Promise<void> {
  const expected = referenceDecisions(steps)
  const decisions: Decision[][] = []
  for (const [i, step] of steps.entries()) {
    const actual = await backend.evaluate(scriptOps(steps, i, decisions), step.mode)
    decisions.push(actual)
    assert.equal(actual.length, step.ops.length, `${label}, step ${i} (${step.mode}): one decision per op`)
    for (const decision of actual) assertDecisionShape(decision, step.mode, `${label}, step ${i}`)
    assert.deepEqual(actual.map(essence), expected[i]!.map(essence), `${label}, step ${i} (${step.mode} ${step.ops.map((o) => `${o.key} cost ${o.cost}`).join(', ')})`)
  }
}

function assertDecisionShape (decision: Decision, mode: EvaluateMode, label: string): void {
  assert.equal(typeof decision.allowed, 'boolean', `${label}: allowed is a boolean`)
  if (mode === 'hit' && decision.allowed) {
    // A charge knows when it was made, so that its refund gives back only what it still holds.
    assert.ok(Number.isSafeInteger(decision.decidedAt), `${label}: an admitted hit carries decidedAt, the backend's time in ms (got ${decision.decidedAt})`)
  }
  assert.ok(Number.isInteger(decision.remaining) && decision.remaining >= 0 && decision.remaining <= decision.limit, `${label}: remaining ${decision.remaining} is an integer in [0, limit]`)
  assert.ok(Number.isInteger(decision.resetMs) && decision.resetMs >= 0, `${label}: resetMs ${decision.resetMs} is a non-negative integer`)
  assert.ok(Number.isInteger(decision.retryAfterMs), `${label}: retryAfterMs ${decision.retryAfterMs} is an integer`)
  if (decision.allowed) assert.equal(decision.retryAfterMs, 0, `${label}: an allowed decision has no wait`)
  else assert.ok(decision.retryAfterMs > 0 || decision.retryAfterMs === -1, `${label}: a rejection says how long to wait`)
}

function step (mode: EvaluateMode, ...ops: EvaluateOp[]): ScriptStep {
  return { mode, ops }
}

/** A refund of the charges step `charged` made (with their `chargedAt`). */
function refundOf (charged: number, ...ops: EvaluateOp[]): ScriptStep {
  return { mode: 'refund', ops, refunds: charged }
}

/** How many of `n` back-to-back hits an exact backend admits. */
function referenceAdmits (ops: readonly EvaluateOp[], n: number): number {
  const decisions = referenceDecisions(Array.from({ length: n }, () => step('hit', ...ops)))
  return decisions.filter((d) => d.every((x) => x.allowed)).length
}

function perStrategy (title: string, run: (backend: ThrottleBackend, strategy: Strategy, concurrency: number) => Promise<void>): ConformanceCase {
  return {
    name: title,
    async run (context) {
      const backend = await context.backend()
      for (const strategy of context.options.strategies) await run(backend, strategy, context.options.concurrency)
    }
  }
}

export const evaluateCases: readonly ConformanceCase[] = [
  perStrategy('evaluate answers like the reference in hit, check and refund modes, for every strategy', async (backend, strategy) => {
    const key = `e:${strategy.name}:{client}`
    const one = op(strategy, key, 5)
    const two = op(strategy, key, 5, 2)
    // The refunds give back charges every strategy admitted: the first one, and the one after it
    // was refunded (a bucket counts the drain since a charge against it, so these are exact
    // however long the script takes).
    await assertScript(backend, [
      step('check', one), step('hit', one), step('check', op(strategy, key, 5, 0)), step('hit', two), step('hit', one),
      step('check', two), step('hit', two), step('hit', one), step('hit', one), refundOf(1, one), step('check', one),
      step('hit', one), step('hit', one), refundOf(11, one), step('hit', op(strategy, key, 5, 9)), step('hit', op(strategy, key, 5, 0))
    ], strategy.name)
  }),
  perStrategy('check never consumes, for every strategy', async (backend, strategy) => {
    const key = `e:${strategy.name}:{checker}`
    for (let i = 0; i < 10; i++) await backend.evaluate([op(strategy, key, 3)], 'check')
    const [first] = await backend.evaluate([op(strategy, key, 3)], 'hit')
    assert.equal(first!.allowed, true, `${strategy.name}: ten checks left the first hit allowed`)
    await assertScript(backend, [step('hit', op(strategy, `e:${strategy.name}:{fresh}`, 3))], `${strategy.name} fresh key`)
  }),
  perStrategy('concurrent hits on one key never over-admit, for every strategy', async (backend, strategy, concurrency) => {
    const limit = 20
    const hit = op(strategy, `e:${strategy.name}:{burst}`, limit)
    const decisions = await Promise.all(Array.from({ length: concurrency }, async () => (await backend.evaluate([hit], 'hit'))[0]!))
    const allowed = decisions.filter((d) => d.allowed).length
    assert.equal(allowed, referenceAdmits([hit], concurrency), `${strategy.name}: ${allowed} of ${concurrency} concurrent hits admitted`)
    const [after] = await backend.evaluate([op(strategy, hit.key, limit, 0)], 'check')
    const script = [...Array.from({ length: concurrency }, () => step('hit', hit)), step('check', op(strategy, hit.key, limit, 0))]
    const reference = referenceDecisions(script).at(-1)![0]!
    assert.equal(after!.remaining, reference.remaining, `${strategy.name}: remaining after the burst (rejected hits consumed nothing)`)
  }),
  perStrategy('several limits are all-or-nothing, for every strategy', async (backend, strategy) => {
    const tight = `e:${strategy.name}:tight:{multi}`
    const main = `e:${strategy.name}:main:{multi}`
    const both = [op(strategy, main, 5), op(counter, tight, 2)]
    await assertScript(backend, [
      step('hit', ...both), step('hit', ...both), step('hit', ...both), step('hit', ...both),
      step('check', op(strategy, main, 5, 0), op(counter, tight, 2, 0)),
      step('hit', op(strategy, main, 5)), step('hit', op(strategy, main, 5)),
      refundOf(0, ...both), step('hit', ...both), step('check', ...both)
    ], `${strategy.name} + fixed-window`)
  }),
  perStrategy('concurrent hits over several limits never over-admit nor charge on rejection, for every strategy', async (backend, strategy, concurrency) => {
    const ops = [op(strategy, `e:${strategy.name}:a:{multi-burst}`, 10), op(counter, `e:${strategy.name}:b:{multi-burst}`, 15)]
    const decisions = await Promise.all(Array.from({ length: concurrency }, async () => await backend.evaluate(ops, 'hit')))
    const allowed = decisions.filter((d) => d.every((x) => x.allowed)).length
    assert.equal(allowed, referenceAdmits(ops, concurrency), `${strategy.name}: ${allowed} of ${concurrency} concurrent two-limit hits admitted`)
    const [, second] = await backend.evaluate([op(strategy, ops[0]!.key, 10, 0), op(counter, ops[1]!.key, 15, 0)], 'check')
    assert.equal(second!.remaining, 15 - allowed, `${strategy.name}: the second limit was charged exactly once per admitted request`)
  })
]
