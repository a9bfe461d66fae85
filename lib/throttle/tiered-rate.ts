/**
 * `tieredRate`: a plan table turned into a rate function (Traffik's `TieredRate`, with the plan
 * read from the request instead of out of the key). Every rate of the table is parsed once, when
 * the helper is built, so a bad entry fails at registration; the request path is a lookup.
 * Specification: docs/tiers-and-time-of-day.md.
 */
import type { FastifyRequest } from 'fastify'
import { describeValue, InvalidOptionError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { parseRate, type Rate, type RateInput } from '../rate.js'
import { isPromiseLike } from './maybe-promise.js'
import type { MaybePromise } from './option-types.js'

/** A rate function: what a throttle's `rate` option takes. */
export type RateFunction = (request: FastifyRequest) => MaybePromise<RateInput>

export interface TieredRateOptions {
  /**
   * The plan whose rate applies when `planOf` names a plan the table does not have (or returns
   * nothing). Without it, such a request fails with `TRAFFIK_ERR_INVALID_OPTION` (a 500 through
   * Fastify's error handling), so a typo in a plan name never passes unlimited.
   * @default none
   */
  fallback?: string
}

/**
 * A rate per plan: `tieredRate({ free: '100/hour', pro: '10000/hour', internal: null }, (request) => request.user.plan)`.
 * Each value is any rate (`null` for unlimited); `planOf` (sync or async) names the request's plan.
 * Throws `TRAFFIK_ERR_INVALID_RATE` / `TRAFFIK_ERR_INVALID_OPTION` at once for a bad table,
 * function or fallback.
 */
export function tieredRate (
  table: Readonly<Record<string, RateInput>>,
  planOf: (request: FastifyRequest) => MaybePromise<string | null | undefined>,
  options: TieredRateOptions = {}
): RateFunction {
  if (table === null || typeof table !== 'object' || Array.isArray(table)) invalidOption('tieredRate table', 'an object of plan → rate', table)
  const plans = new Map<string, Rate>()
  for (const [plan, rate] of Object.entries(table)) plans.set(plan, parseRate(rate, `tieredRate.${plan}`))
  if (plans.size === 0) invalidOption('tieredRate table', 'at least one plan', table)
  if (typeof planOf !== 'function') invalidOption('tieredRate planOf', 'a function (request) => plan name', planOf)
  if (options === null || typeof options !== 'object') invalidOption('tieredRate options', 'an object', options)
  rejectUnknownKeys('tieredRate', options, ['fallback'])
  const { fallback } = options
  if (fallback !== undefined && !plans.has(fallback)) invalidOption('tieredRate fallback', `one of the plans (${[...plans.keys()].join(', ')})`, fallback)
  const names = [...plans.keys()].join(', ')
  const rateOf = (plan: unknown): Rate => {
    const rate = typeof plan === 'string' ? plans.get(plan) : undefined
    if (rate !== undefined) return rate
    if (fallback !== undefined) return plans.get(fallback)!
    throw new InvalidOptionError('plan', `a plan of the tieredRate table (${names})`, describeValue(plan))
  }
  return (request) => {
    const plan = planOf(request)
    return isPromiseLike<string | null | undefined>(plan) ? Promise.resolve(plan).then(rateOf) : rateOf(plan)
  }
}
