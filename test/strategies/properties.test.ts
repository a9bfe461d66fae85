/**
 * Property tests: every strategy against its brute-force reference model on random timelines,
 * with explicit `now` (no real time). Per step: same decision as the model; integer fields;
 * remaining exact and in [0, limit]; resetMs is when the client is fresh again; retryAfterMs is
 * the exact wait (the same request passes after it, not 1 ms earlier; -1 only beyond the capacity);
 * a rejection returns an equivalent state; TTLs are long enough (the emulated store drops states
 * when their TTL passes, so a short TTL would over-admit and disagree with the model).
 *
 * Refunds give back admitted charges made earlier (often in an earlier window, or long gone), with
 * their `chargedAt`: the strategy must match the model's refund rule, and never be more generous
 * than a history in which the refunded charges were never made.
 */
import fc from 'fast-check'
import t from 'tap'
import type { Decision } from '../../types/decision.js'
import type { Strategy, StrategyState } from '../../types/strategy.js'
import { subjects, type Model, type Subject } from './models.js'
import { StoredState, timelineArbitrary, type Timeline } from './timeline.js'

const NUM_RUNS = Number(process.env.STRATEGY_NUM_RUNS ?? 1000)

function assertIntegers (decision: Decision, ttlMs: number): void {
  for (const [name, value] of Object.entries({ ...decision, ttlMs })) {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error(`${name} is not an integer: ${value}`)
  }
}

function fail (message: string, context: unknown): never {
  throw new Error(`${message}: ${JSON.stringify(context)}`)
}

/** Decisions of a few probes: two states are equivalent when every probe answers the same. */
function probes (strategy: Strategy, state: StrategyState | undefined, now: number, limit: number, windowMs: number): Decision[] {
  const out: Decision[] = []
  for (const delta of [0, 1, Math.floor(windowMs / 2), windowMs]) {
    for (const cost of [0, 1, limit]) out.push(strategy.step(state, now + delta, limit, windowMs, cost).decision)
  }
  return out
}

/** An admitted charge, as a refund gives it back. */
interface Charge { at: number, cost: number }

/** Checks that hold for every decision, whatever the mode. */
function assertDecision (subject: Subject, model: Model, d: Decision, ttlMs: number, limit: number, now: number, ctx: unknown): void {
  assertIntegers(d, ttlMs)
  if (d.limit !== limit) fail('decision.limit is not the limit', ctx)
  if (d.remaining < 0 || d.remaining > limit) fail('remaining out of [0, limit]', ctx)
  if (d.resetMs < 0 || ttlMs < 1) fail('negative resetMs or ttlMs < 1', ctx)
  // remaining is exact: that much passes now, one more does not (unless clamped at the limit).
  if (d.remaining > 0 && !model.allows(now, d.remaining)) fail('remaining is more than passes now', ctx)
  if (d.remaining < limit && model.allows(now, d.remaining + 1)) fail('remaining is less than passes now', ctx)
  // resetMs: fresh again after it (and, where it is defined as such, not 1 ms earlier).
  if (!model.isFull(now + d.resetMs)) fail('not fresh after resetMs', ctx)
  if (subject.resetIsTight && d.resetMs > 0 && model.isFull(now + d.resetMs - 1)) fail('resetMs is not tight', ctx)
}

/**
 * Whether a request of `cost` at `now` would pass had only `charges` been made: the history
 * without the refunded charges. Removing charges never makes an admitted one fail, so each passes.
 */
function passesWithout (subject: Subject, limit: number, windowMs: number, charges: readonly Charge[], now: number, cost: number): boolean {
  const model = subject.model(limit, windowMs)
  for (const charge of charges) {
    if (!model.hit(charge.at, charge.cost)) fail('a charge that was admitted fails without the refunded ones', { charge, charges })
  }
  return model.allows(now, cost)
}

/** Gives back one of the admitted charges (the step's pick) on both sides and compares. */
function runRefundStep (subject: Subject, model: Model, store: StoredState, charges: Charge[], limit: number, windowMs: number, now: number, pick: number): void {
  if (charges.length === 0) return
  const [charge] = charges.splice(pick % charges.length, 1)
  const state = store.read(now)
  const result = subject.strategy.refund!(state, now, limit, windowMs, charge!.cost, charge!.at)
  model.refund(now, charge!.at, charge!.cost)
  const d = result.decision
  const ctx = { now, refund: charge, state, decision: d, ttlMs: result.ttlMs }
  if (!d.allowed || d.retryAfterMs !== 0 || (d.delayMs ?? 0) !== 0) fail('a refund answers allowed, without a wait', ctx)
  assertDecision(subject, model, d, result.ttlMs, limit, now, ctx)
  store.write(result.state, now, result.ttlMs)
  // Never more generous than if the refunded charges had not been made at all.
  const after = store.read(now)
  for (const cost of new Set([1, 2, Math.ceil(limit / 2), limit])) {
    if (subject.strategy.step(after, now, limit, windowMs, cost).decision.allowed && !passesWithout(subject, limit, windowMs, charges, now, cost)) {
      fail(`a refund gave back more than the charge still held: cost ${cost} passes`, { ...ctx, charges })
    }
  }
}

function runTimeline (subject: Subject, timeline: Timeline): number {
  const { strategy } = subject
  const { limit, windowMs } = timeline
  const model: Model = subject.model(limit, windowMs)
  const store = new StoredState(strategy)
  const charges: Charge[] = []
  let now = timeline.start
  let steps = 0
  for (const { gap, cost, mode, pick } of timeline.steps) {
    now += gap
    steps++
    if (mode === 'refund') {
      runRefundStep(subject, model, store, charges, limit, windowMs, now, pick)
      continue
    }
    const state = store.read(now)
    const expected = model.allows(now, cost)
    const expectedDelay = model.delay === undefined ? undefined : expected ? model.delay(now, cost) : 0
    const result = strategy.step(state, now, limit, windowMs, cost)
    const d = result.decision
    const ctx = { now, cost, state, decision: d, ttlMs: result.ttlMs }
    if (d.allowed !== expected) fail(`allowed ${d.allowed}, model says ${expected}`, ctx)
    if (expectedDelay !== undefined && (d.delayMs ?? 0) !== expectedDelay) fail(`delayMs should be ${expectedDelay}`, ctx)
    if (expectedDelay === undefined && (d.delayMs ?? 0) !== 0) fail('delayMs on a strategy that does not queue', ctx)

    if (d.allowed) {
      if (d.retryAfterMs !== 0) fail('retryAfterMs must be 0 when allowed', ctx)
      model.hit(now, cost)
      store.write(result.state, now, result.ttlMs)
      charges.push({ at: now, cost })
    } else {
      // Rejections consume nothing: the returned state behaves exactly like the input.
      const returned = result.state ?? undefined
      if (JSON.stringify(probes(strategy, state, now, limit, windowMs)) !== JSON.stringify(probes(strategy, returned, now, limit, windowMs))) {
        fail('a rejection returned a state that is not equivalent to its input', ctx)
      }
      if (cost > model.maxCost) {
        if (d.retryAfterMs !== -1) fail(`cost above the capacity ${model.maxCost} must say -1`, ctx)
      } else {
        const r = d.retryAfterMs
        if (!(r >= 1)) fail('retryAfterMs must be >= 1 for a request that can pass later', ctx)
        if (!model.allows(now + r, cost)) fail('the model still rejects after retryAfterMs', ctx)
        if (model.allows(now + r - 1, cost)) fail('retryAfterMs is not tight: the model allows 1 ms earlier', ctx)
        const later = strategy.step(store.read(now + r), now + r, limit, windowMs, cost)
        if (!later.decision.allowed) fail('the strategy still rejects after retryAfterMs', ctx)
      }
    }
    assertDecision(subject, model, d, result.ttlMs, limit, now, ctx)
  }
  return steps
}

/** A hit followed at once by a refund of the same cost leaves a state equivalent to the one before. */
function runRefund (subject: Subject, timeline: Timeline): void {
  const { strategy } = subject
  const { limit, windowMs } = timeline
  let state: StrategyState | undefined
  let now = timeline.start
  for (const { gap, cost } of timeline.steps) {
    now += gap
    const hit = strategy.step(state, now, limit, windowMs, cost)
    if (!hit.decision.allowed) continue
    const refunded = strategy.refund!(hit.state ?? undefined, now, limit, windowMs, cost)
    assertIntegers(refunded.decision, refunded.ttlMs)
    if (!refunded.decision.allowed || refunded.decision.retryAfterMs !== 0) fail('a refund answers allowed', refunded.decision)
    if (JSON.stringify(probes(strategy, state, now, limit, windowMs)) !== JSON.stringify(probes(strategy, refunded.state ?? undefined, now, limit, windowMs))) {
      fail('hit + refund is not equivalent to nothing', { now, cost, state, after: refunded.state })
    }
    state = hit.state ?? undefined
  }
}

for (const subject of subjects()) {
  t.test(`${subject.label} matches its reference model`, async (t) => {
    let steps = 0
    fc.assert(fc.property(timelineArbitrary(), (timeline) => {
      steps += runTimeline(subject, timeline)
    }), { numRuns: NUM_RUNS })
    t.comment(`${subject.label}: ${NUM_RUNS} timelines, ${steps} steps`)
    t.pass(`${NUM_RUNS} random timelines agree with the model`)
  })

  if (subject.strategy.refund !== undefined) {
    t.test(`${subject.label}: refunds of earlier charges match the model and give back no more than the charge holds`, async (t) => {
      let steps = 0
      fc.assert(fc.property(timelineArbitrary({ modes: ['hit', 'hit', 'refund'] }), (timeline) => {
        steps += runTimeline(subject, timeline)
      }), { numRuns: NUM_RUNS })
      t.comment(`${subject.label} with refunds: ${NUM_RUNS} timelines, ${steps} steps`)
      t.pass(`${NUM_RUNS} random timelines with refunds agree with the model`)
    })

    t.test(`${subject.label}: hit then refund restores an equivalent state`, async (t) => {
      fc.assert(fc.property(timelineArbitrary({ maxSteps: 20 }), (timeline) => { runRefund(subject, timeline) }), { numRuns: Math.ceil(NUM_RUNS / 2) })
      t.comment(`${subject.label} refund: ${Math.ceil(NUM_RUNS / 2)} timelines`)
      t.pass()
    })
  }
}
