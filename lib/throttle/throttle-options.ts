/**
 * Validation of throttle options. Runs once, when a throttle is built; every bad value fails with
 * a coded error that names the option and the value. Nothing falls back silently.
 */
import type { Strategy } from '../../types/strategy.js'
import { ThrottleBackend } from '../backends/throttle-backend.js'
import { ConflictingOptionsError, InvalidRateError, describeValue, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { parseRate, type Rate } from '../rate.js'
import type { EscalationPolicy } from '../strategies/escalation.js'
import type { BanOptions, EscalationOptions, ShadowOptions, ThrottleOptions } from './option-types.js'

const KNOWN_OPTIONS: readonly string[] = [
  'uid', 'rate', 'strategy', 'identifier', 'cost', 'onError', 'headers', 'backend', 'dynamicBackend',
  'rules', 'onThrottled', 'shadow', 'lists', 'escalation', 'countIf', 'skipSuccessful', 'skipFailed', 'countAborted', 'priority', 'adaptive', 'lease'
]

/** Rejects unknown keys: a typo such as `limit` or `window` must not be ignored silently. */
export function assertKnownOptions (options: object, where: string): void {
  rejectUnknownKeys('a throttle', options, KNOWN_OPTIONS, where)
}

export function validateUid (uid: unknown): string {
  if (typeof uid !== 'string' || uid.length === 0 || uid.length > 512) {
    invalidOption('uid', 'a non-empty string of at most 512 characters', uid)
  }
  return uid
}

/** A static rate, or the function computing it per request. */
export function validateRate (rate: ThrottleOptions['rate']): Rate | ((request: never) => unknown) {
  if (rate === undefined) {
    throw new InvalidRateError('rate', "a rate is required (e.g. '100/min'), here or in the plugin's defaults", 'undefined')
  }
  if (typeof rate === 'function') return rate as (request: never) => unknown
  return parseRate(rate as Parameters<typeof parseRate>[0], 'rate')
}

export function validateStrategy (strategy: unknown): Strategy {
  const s = strategy as Partial<Strategy> | null
  if (s === null || typeof s !== 'object' || typeof s.step !== 'function' || typeof s.encode !== 'function' ||
    typeof s.decode !== 'function' || typeof s.name !== 'string') {
    invalidOption('strategy', 'a strategy instance such as new FixedWindow()', strategy)
  }
  return s as Strategy
}

/** A static cost, or the function computing it per request. */
export function validateCost (cost: unknown): number | ((request: never) => unknown) {
  if (typeof cost === 'function') return cost as (request: never) => unknown
  if (!isValidCost(cost)) invalidOption('cost', 'a non-negative integer or a function', cost)
  return cost
}

export function isValidCost (cost: unknown): cost is number {
  return typeof cost === 'number' && Number.isSafeInteger(cost) && cost >= 0
}

export function validateFunction<T> (name: string, value: unknown): T {
  if (typeof value !== 'function') invalidOption(name, 'a function', value)
  return value as T
}

export function validateBackendChoice (backend: unknown, dynamicBackend: unknown): void {
  if (backend !== undefined && !(backend instanceof ThrottleBackend)) {
    invalidOption('backend', 'a ThrottleBackend instance (InMemoryBackend, RedisBackend, ...)', backend)
  }
  if (dynamicBackend !== undefined && typeof dynamicBackend !== 'boolean' && dynamicBackend !== 'required') {
    invalidOption('dynamicBackend', "true, false or 'required'", dynamicBackend)
  }
  if (backend !== undefined && dynamicBackend !== undefined && dynamicBackend !== false) {
    throw new ConflictingOptionsError('backend', 'dynamicBackend',
      'a throttle either pins one backend or reads the request\'s backend (' + describeValue(backend) + ')')
  }
}

/** `shadow`: a boolean or `{ headers?: boolean }`, as `{ on, headers }`. */
export function validateShadow (shadow: unknown): { on: boolean, headers: boolean } {
  if (typeof shadow === 'boolean') return { on: shadow, headers: false }
  if (shadow === null || typeof shadow !== 'object' || Array.isArray(shadow)) {
    return invalidOption('shadow', 'a boolean or { headers?: boolean }', shadow)
  }
  rejectUnknownKeys('shadow mode', shadow, ['headers'], 'shadow')
  const { headers = false } = shadow as ShadowOptions
  if (typeof headers !== 'boolean') invalidOption('shadow.headers', 'a boolean', headers)
  return { on: true, headers }
}

/** How a throttle answers a ban: what `escalation` says beyond the policy's numbers. */
export interface BanAnswer {
  readonly statusCode: number
  readonly body: unknown
  readonly onBanReach: EscalationOptions['onBanReach']
}

/**
 * `escalation`: checks its keys and the answer of the ban tier, and splits it into the policy's
 * numbers (checked by the Escalation strategy) and how a ban is answered.
 */
export function validateEscalation (escalation: unknown): { policy: EscalationPolicy, ban: BanAnswer } {
  if (escalation === null || typeof escalation !== 'object' || Array.isArray(escalation)) {
    return invalidOption('escalation', 'an object { blocks?, periodMs?, ban?, continueExceeding?, offendWhileBlocked?, onBanReach? }', escalation)
  }
  rejectUnknownKeys('escalation', escalation, ['blocks', 'periodMs', 'ban', 'continueExceeding', 'offendWhileBlocked', 'onBanReach'], 'escalation')
  const { ban, onBanReach, ...numbers } = escalation as EscalationOptions
  if (onBanReach !== undefined && typeof onBanReach !== 'function') invalidOption('escalation.onBanReach', 'a function', onBanReach)
  let statusCode = 403
  let body: unknown
  const policy: EscalationPolicy = { ...numbers }
  if (ban !== undefined) {
    if (ban === null || typeof ban !== 'object' || Array.isArray(ban)) return invalidOption('escalation.ban', 'an object { after, durationMs?, statusCode?, body? }', ban)
    rejectUnknownKeys('escalation.ban', ban, ['after', 'durationMs', 'statusCode', 'body'], 'escalation.ban')
    const { statusCode: status, body: answer, ...tier } = ban as BanOptions
    if (status !== undefined) {
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) invalidOption('escalation.ban.statusCode', 'an integer from 400 to 599', status)
      statusCode = status
    }
    body = answer
    policy.ban = tier
  }
  return { policy, ban: { statusCode, body, onBanReach } }
}

/** What decides, after the response, whether an admitted request keeps its charge. */
export interface ResponseCounting {
  readonly countIf: (request: never, reply: { readonly statusCode: number }) => boolean | PromiseLike<boolean>
  readonly countAborted: boolean
}

const countFailures = (_request: never, reply: { readonly statusCode: number }): boolean => reply.statusCode >= 400
const countSuccesses = (_request: never, reply: { readonly statusCode: number }): boolean => reply.statusCode < 400

/** `countIf`, `skipSuccessful`, `skipFailed`, `countAborted`: one rule, or undefined when every request counts. */
export function validateCounting (options: ThrottleOptions): ResponseCounting | undefined {
  const { countIf, skipSuccessful = false, skipFailed = false, countAborted } = options
  if (typeof skipSuccessful !== 'boolean') invalidOption('skipSuccessful', 'a boolean', skipSuccessful)
  if (typeof skipFailed !== 'boolean') invalidOption('skipFailed', 'a boolean', skipFailed)
  if (countIf !== undefined && typeof countIf !== 'function') invalidOption('countIf', 'a function (request, reply) => boolean', countIf)
  if (countAborted !== undefined && typeof countAborted !== 'boolean') invalidOption('countAborted', 'a boolean', countAborted)
  if (skipSuccessful && skipFailed) throw new ConflictingOptionsError('skipSuccessful', 'skipFailed', 'together they count nothing; remove the limit instead')
  if (countIf !== undefined && (skipSuccessful || skipFailed)) {
    throw new ConflictingOptionsError('countIf', skipSuccessful ? 'skipSuccessful' : 'skipFailed', 'the shorthand is a countIf of its own; keep one')
  }
  const rule = countIf ?? (skipSuccessful ? countFailures : skipFailed ? countSuccesses : undefined)
  if (rule === undefined) {
    if (countAborted !== undefined) invalidOption('countAborted', 'only with countIf, skipSuccessful or skipFailed', countAborted)
    return undefined
  }
  return { countIf: rule as ResponseCounting['countIf'], countAborted: countAborted ?? true }
}
