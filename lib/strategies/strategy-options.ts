/**
 * Validation of strategy constructor options: every bad value fails at construction with
 * `TRAFFIK_ERR_INVALID_OPTION`, naming the option and the value.
 */
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'

/** Checks that `options` is absent or a plain object holding only `known` keys; returns it as a record. */
export function readOptions (strategy: string, options: unknown, known: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    invalidOption(`${strategy} options`, 'an object or nothing', options)
  }
  rejectUnknownKeys(strategy, options, known)
  return options as Record<string, unknown>
}

/** An optional integer option within [min, Number.MAX_SAFE_INTEGER]; undefined stays undefined. */
export function integerOption (strategy: string, name: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    invalidOption(name, `${strategy} expects an integer >= ${min}`, value)
  }
  return value
}
