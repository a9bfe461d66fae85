/**
 * Overrides of a throttle's configuration set by an operator for the whole fleet (see
 * `fastify.throttle.overrides`): the values, their validation, and what a limit reads per request.
 * Where they are stored and how every instance learns them is the plugin's business.
 */
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { parseRate, type Rate, type RateInput } from '../rate.js'
import { isValidCost } from './throttle-options.js'

/** What an override may change. Every field is optional; a missing one leaves the throttle's own. */
export interface OverrideValues {
  /** Replaces the throttle's rate (`'100/min'`, `{ limit, windowMs }`, `null` for unlimited). */
  rate?: RateInput
  /** Replaces the throttle's cost per request (a caller's explicit `hit(request, { cost })` still wins). */
  cost?: number
  /** `true`: the throttle (or, for an identifier, this client) is not limited at all. */
  disabled?: boolean
  /** `true`: the throttle decides and charges but never rejects. Whole throttles only. */
  shadow?: boolean
}

/** One override as a limit reads it: validated, the rate parsed. */
export interface CompiledOverride {
  readonly rate: Rate | undefined
  readonly cost: number | undefined
  readonly disabled: boolean | undefined
  readonly shadow: boolean | undefined
}

const THROTTLE_KEYS = ['rate', 'cost', 'disabled', 'shadow'] as const
const IDENTIFIER_KEYS = ['rate', 'cost', 'disabled'] as const

/**
 * Validates override values; `forIdentifier` leaves out `shadow`, which is chosen per request
 * before the identifier is known. Throws `TRAFFIK_ERR_INVALID_OPTION` / `TRAFFIK_ERR_INVALID_RATE`.
 */
export function compileOverride (values: unknown, forIdentifier: boolean, path = 'override'): CompiledOverride {
  if (values === null || typeof values !== 'object' || Array.isArray(values)) {
    invalidOption(path, `an object with ${(forIdentifier ? IDENTIFIER_KEYS : THROTTLE_KEYS).join(', ')}`, values)
  }
  rejectUnknownKeys(forIdentifier ? 'an override for one identifier' : 'an override', values, forIdentifier ? IDENTIFIER_KEYS : THROTTLE_KEYS, path)
  const { rate, cost, disabled, shadow } = values as OverrideValues
  if (cost !== undefined && !isValidCost(cost)) invalidOption(`${path}.cost`, 'a non-negative integer', cost)
  if (disabled !== undefined && typeof disabled !== 'boolean') invalidOption(`${path}.disabled`, 'a boolean', disabled)
  if (shadow !== undefined && typeof shadow !== 'boolean') invalidOption(`${path}.shadow`, 'a boolean', shadow)
  return Object.freeze({
    rate: rate === undefined ? undefined : parseRate(rate, `${path}.rate`),
    cost,
    disabled,
    shadow
  })
}

/** Every override of one throttle: its own, and per identifier. */
export interface LimitOverrides {
  readonly throttle: CompiledOverride | undefined
  readonly identifiers: ReadonlyMap<string, CompiledOverride>
  /** When the first of them lapses (ms since the epoch); undefined: none lapses. */
  readonly expiresAt: number | undefined
}
