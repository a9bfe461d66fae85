/**
 * The strategies' transitions over one call's limits, as pure functions: the one JavaScript copy
 * of the all-or-nothing rule (the Lua side has its own, in the composed script). InMemoryBackend
 * and the generic locked `evaluate` read the states, call these, and store what they say.
 */
import type { EvaluateMode, EvaluateOp } from '../../types/backend.js'
import type { Decision } from '../../types/decision.js'
import type { StepResult, StrategyState } from '../../types/strategy.js'
import { untouchedDecision } from '../decision.js'

/** What one call's limits come to. */
export interface SteppedLimits {
  /** Per op: the transition, or null where a refund leaves the state as it is (a strategy without `refund`). */
  readonly results: ReadonlyArray<StepResult | null>
  /** Per op: the decision to answer. */
  readonly decisions: Decision[]
  /** Whether the new states are stored (see `commits`). */
  readonly commit: boolean
}

/**
 * Whether a call stores its new states: a refund always, a hit only when every limit allows
 * (a route with several limits never charges one when another rejects), a check never.
 */
export function commits (mode: EvaluateMode, everyAllowed: boolean): boolean {
  return mode === 'refund' || (mode === 'hit' && everyAllowed)
}

/**
 * Whether one op's new state is stored: when the call commits, and also when the op rejected a
 * hit and its strategy keeps the state anyway (an escalation policy recording an offence).
 */
export function writes (mode: EvaluateMode, commit: boolean, result: StepResult): boolean {
  return commit || (mode === 'hit' && result.keep === true)
}

/**
 * One op's transition from `state` at `now` (the backend's clock): the strategy's `refund` for
 * `'refund'` (given back as charged at `op.chargedAt`), else its `step`, whose decision is stamped
 * `decidedAt = now`. Null when a refund has nothing to give back.
 */
export function stepOne (op: EvaluateOp, state: StrategyState | undefined, now: number, mode: EvaluateMode): StepResult | null {
  if (mode === 'refund') return op.strategy.refund?.(state, now, op.limit, op.windowMs, op.cost, op.chargedAt, op.bounds) ?? null
  const result = op.strategy.step(state, now, op.limit, op.windowMs, op.cost, op.bounds)
  result.decision.decidedAt = now
  return result
}

/** Every op's transition (`states[i]` is op i's stored state, undefined when absent), and whether to store them. */
export function stepAll (ops: readonly EvaluateOp[], states: ReadonlyArray<StrategyState | undefined>, now: number, mode: EvaluateMode): SteppedLimits {
  const results: Array<StepResult | null> = new Array(ops.length)
  const decisions: Decision[] = new Array(ops.length)
  let everyAllowed = true
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!
    const result = stepOne(op, states[i], now, mode)
    results[i] = result
    decisions[i] = result?.decision ?? untouchedDecision(op.limit)
    if (result !== null && !result.decision.allowed) everyAllowed = false
  }
  return { results, decisions, commit: commits(mode, everyAllowed) }
}
