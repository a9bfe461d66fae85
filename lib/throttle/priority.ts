/**
 * Priority classes on one budget: every request of a throttle draws on the same counter, and a
 * request of class c is admitted only while what is used stays within c's share of the limit.
 * The class with share 1 can use the whole budget, so the headroom above every lower share is
 * always left for it: under a flood of lower-class traffic, it is never refused while within
 * its own share (Stripe's rule for its fleet shedder).
 */
import type { Strategy } from '../../types/strategy.js'
import { ConflictingOptionsError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { isPromiseLike } from './maybe-promise.js'
import type { MaybePromise, PriorityOptions } from './option-types.js'

/** A validated `priority`: the share of each request. */
export interface CompiledPriority {
  shareOf: (request: never) => number | Promise<number>
}

export function compilePriority (priority: unknown): CompiledPriority {
  if (priority === null || typeof priority !== 'object' || Array.isArray(priority)) {
    invalidOption('priority', '{ of: (request) => class, shares: { class: share, ... }, fallback? }', priority)
  }
  rejectUnknownKeys('priority', priority, ['of', 'shares', 'fallback'], 'priority')
  const { of, shares, fallback } = priority as PriorityOptions
  if (typeof of !== 'function') invalidOption('priority.of', 'a function (request) => class name', of)
  if (shares === null || typeof shares !== 'object' || Array.isArray(shares) || Object.keys(shares).length === 0) {
    invalidOption('priority.shares', 'an object of class name → share in (0, 1]', shares)
  }
  const table = new Map<string, number>()
  for (const [name, share] of Object.entries(shares)) {
    if (typeof share !== 'number' || !(share > 0 && share <= 1)) invalidOption(`priority.shares.${name}`, 'a share in (0, 1]', share)
    table.set(name, share)
  }
  const lowest = [...table].reduce((a, b) => (b[1] < a[1] ? b : a))[0]
  const fallbackName = fallback ?? lowest
  if (!table.has(fallbackName)) invalidOption('priority.fallback', `one of ${[...table.keys()].join(', ')}`, fallback)
  const fallbackShare = table.get(fallbackName)!
  const shareOfClass = (name: unknown): number => (typeof name === 'string' ? table.get(name) : undefined) ?? fallbackShare
  return {
    shareOf: (request: never) => {
      const name = (of as (request: never) => MaybePromise<string>)(request)
      return isPromiseLike<string>(name) ? Promise.resolve(name).then(shareOfClass) : shareOfClass(name)
    }
  }
}

/**
 * Refuses `priority` or `adaptive` (options that decide one key against changing limits) with a
 * strategy whose stored state is scaled by the limit.
 */
export function assertPriorityStrategy (uid: string, strategy: Strategy, option: 'priority' | 'adaptive'): void {
  if (strategy.stateIndependentOfLimit !== true) {
    throw new ConflictingOptionsError(option, 'strategy', `throttle '${uid}' uses ${strategy.name}, whose state is scaled by the limit, so one key cannot be decided against changing limits; ${option} works with FixedWindow, SlidingWindowCounter, SlidingWindowLog and Concurrency`)
  }
}

/** The limit a request of this share is decided against. */
export function shareOfLimit (limit: number, share: number): number {
  return share === 1 ? limit : Math.floor(limit * share)
}
