/**
 * Strategies as plain data (StrategySpec), so a process that did not build a strategy can build
 * the same one: a backend whose state lives in another process (ClusterBackend's primary) runs
 * the strategy's `step` there. Built-in classes travel as their name and options; an escalation
 * as its policy and the strategy it wraps; anything else (a custom strategy, a subclass) by its
 * `name`, to be matched with an instance the other process was given.
 */
import type { Strategy, StrategyCodec, StrategySpec } from '../../types/strategy.js'
import { invalidOption, UnsupportedError } from '../errors.js'
import { CalendarQuota } from './calendar-quota.js'
import { Concurrency } from './concurrency.js'
import { Escalation, type EscalationPolicy } from './escalation.js'
import { FixedWindow } from './fixed-window.js'
import { GCRA } from './gcra.js'
import { LeakyBucketWithQueue } from './leaky-bucket-with-queue.js'
import { LeakyBucket } from './leaky-bucket.js'
import { SlidingWindowCounter } from './sliding-window-counter.js'
import { SlidingWindowLog } from './sliding-window-log.js'
import { TokenBucketWithDebt } from './token-bucket-with-debt.js'
import { TokenBucket } from './token-bucket.js'

type BuiltIn = new (options?: any) => Strategy

/** Each built-in class, and the options that rebuild an instance of it. */
const BUILT_INS: ReadonlyMap<string, { readonly type: BuiltIn, readonly options: (strategy: any) => Record<string, unknown> }> = new Map([
  ['FixedWindow', { type: FixedWindow, options: () => ({}) }],
  ['SlidingWindowCounter', { type: SlidingWindowCounter, options: () => ({}) }],
  ['SlidingWindowLog', { type: SlidingWindowLog, options: () => ({}) }],
  ['Concurrency', { type: Concurrency, options: (s: Concurrency) => defined({ maxWaitMs: s.maxWaitMs > 0 ? s.maxWaitMs : undefined }) }],
  // A per-request anchor (a function) does not travel: the op's bounds already carry its periods.
  ['CalendarQuota', { type: CalendarQuota, options: (s: CalendarQuota) => defined({ period: s.period, zone: s.zone, anchor: s.fixedAnchor, rollover: s.rolloverCap > 0 ? { cap: s.rolloverCap } : undefined }) }],
  ['TokenBucket', { type: TokenBucket, options: (s: TokenBucket) => defined({ burst: s.burst }) }],
  ['TokenBucketWithDebt', { type: TokenBucketWithDebt, options: (s: TokenBucketWithDebt) => defined({ burst: s.burst, maxDebt: s.maxDebt }) }],
  ['LeakyBucket', { type: LeakyBucket, options: (s: LeakyBucket) => ({ burst: s.burst }) }],
  ['LeakyBucketWithQueue', { type: LeakyBucketWithQueue, options: (s: LeakyBucketWithQueue) => ({ maxDelayMs: s.maxDelayMs }) }],
  ['GCRA', { type: GCRA, options: (s: GCRA) => ({ burst: s.burst }) }]
])

/** The spec of `strategy`. A subclass of a built-in is not the built-in: it travels by name. */
export function describeStrategy (strategy: Strategy): StrategySpec {
  if (strategy instanceof Escalation) return { kind: 'escalation', strategy: describeStrategy(strategy.strategy), policy: strategy.policy }
  for (const [name, entry] of BUILT_INS) {
    if (strategy.constructor === entry.type) return { kind: 'built-in', class: name, options: entry.options(strategy) }
  }
  return { kind: 'named', name: strategy.name }
}

/** The strategy `spec` describes; `known` holds the instances a `'named'` spec may stand for, by name. */
export function reviveStrategy (spec: StrategySpec, known: ReadonlyMap<string, Strategy>): Strategy {
  if (spec === null || typeof spec !== 'object') invalidOption('strategy spec', 'an object', spec)
  switch (spec.kind) {
    case 'built-in': {
      const entry = BUILT_INS.get(spec.class)
      if (entry === undefined) throw new UnsupportedError(`no built-in strategy '${String(spec.class)}' in this version of fastify-traffik`)
      const { type: BuiltInClass } = entry
      return new BuiltInClass(spec.options)
    }
    case 'escalation':
      return new Escalation(reviveStrategy(spec.strategy, known), spec.policy as EscalationPolicy)
    case 'named': {
      const strategy = known.get(spec.name)
      if (strategy === undefined) {
        throw new UnsupportedError(`strategy '${String(spec.name)}' is not a built-in and this process was given no strategy of that name`)
      }
      return strategy
    }
    default:
      return invalidOption('strategy spec', "kind 'built-in', 'escalation' or 'named'", spec)
  }
}

/** Both directions, as one value for the backends that need them. */
export const strategyCodec: StrategyCodec = { describe: describeStrategy, revive: reviveStrategy }

function defined (options: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
}
