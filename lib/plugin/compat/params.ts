/**
 * `@fastify/rate-limit` options → the parameters of one compat limit, validated once. Route
 * options are merged over the plugin's, as the old plugin merges them.
 */
import { parse as parseDuration } from '@lukeed/ms'
import type { FastifyRequest } from 'fastify'
import { invalidOption, UnsupportedError } from '../../errors.js'
import { rejectUnknownKeys } from '../../options.js'
import { expandIpv6 } from '../../throttle/identifier.js'
import type { ErrorResponseBuilderContext, RateLimitAddHeaders, RateLimitHook, RateLimitPluginOptions, RateLimitStoreCtor } from './options.js'

type MaybeAsync<T> = T | Promise<T>
type KeyFn<T> = (request: FastifyRequest, key: string) => MaybeAsync<T>

const ROUTE_OPTIONS = [
  'store', 'skipOnError', 'max', 'timeWindow', 'allowList', 'keyGenerator', 'ipv6Subnet', 'ban', 'hook', 'cache',
  'continueExceeding', 'onBanReach', 'groupId', 'errorResponseBuilder', 'enableDraftSpec', 'onExceeding',
  'onExceeded', 'exponentialBackoff', 'addHeaders', 'addHeadersOnExceeding'
]
export const PLUGIN_OPTIONS: readonly string[] = [...ROUTE_OPTIONS, 'global', 'redis', 'nameSpace']
export { ROUTE_OPTIONS }

const HOOKS: readonly string[] = ['onRequest', 'preParsing', 'preValidation', 'preHandler']

/** Header names, by `enableDraftSpec`. */
export interface Labels { limit: string, remaining: string, reset: string, retryAfter: string }
const LEGACY: Labels = { limit: 'x-ratelimit-limit', remaining: 'x-ratelimit-remaining', reset: 'x-ratelimit-reset', retryAfter: 'retry-after' }
const DRAFT: Labels = { limit: 'ratelimit-limit', remaining: 'ratelimit-remaining', reset: 'ratelimit-reset', retryAfter: 'retry-after' }

export interface LimitParams {
  readonly max: number | KeyFn<number>
  readonly timeWindow: number | KeyFn<number>
  readonly keyGenerator: (request: FastifyRequest) => MaybeAsync<string | number>
  readonly allowList: ((request: FastifyRequest, key: string) => MaybeAsync<boolean>) | undefined
  readonly groupId: string | undefined
  readonly hook: RateLimitHook
  readonly skipOnError: boolean
  readonly labels: Labels
  /** Header names written on allowed and on rejected responses. */
  readonly onAllowed: readonly string[]
  readonly onRejected: readonly string[]
  readonly errorResponseBuilder: (request: FastifyRequest, context: ErrorResponseBuilderContext) => object
  readonly onExceeding: ((request: FastifyRequest, key: string) => void) | undefined
  readonly onExceeded: ((request: FastifyRequest, key: string) => void) | undefined
  /** Rejections tolerated in a window before 403; -1 off. */
  readonly ban: number
  readonly onBanReach: ((request: FastifyRequest, key: string) => void) | undefined
  readonly continueExceeding: boolean
  readonly exponentialBackoff: boolean
  /** The registration's callback store: it counts, instead of a native throttle. */
  readonly store: RateLimitStoreCtor | undefined
}

/** The old plugin's rejection: an error with the status, serialised by Fastify as `{ statusCode, error, message }`. */
function defaultErrorResponse (_request: FastifyRequest, context: ErrorResponseBuilderContext): object {
  const error = new Error(`Rate limit exceeded, retry in ${context.after}`) as Error & { statusCode: number }
  error.statusCode = context.statusCode
  return error
}

/** Validates one level of options (plugin or route) and merges it over `base`. */
export function mergeParams (options: RateLimitPluginOptions, where: string, base?: LimitParams): LimitParams {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) invalidOption(where, 'an object of @fastify/rate-limit options', options)
  rejectUnknownKeys('fastify-traffik/compat', options, where === 'options' ? PLUGIN_OPTIONS : ROUTE_OPTIONS, where === 'options' ? undefined : where)
  if (options.store !== undefined && where !== 'options') throw new UnsupportedError(`fastify-traffik/compat: 'store' is a plugin option (${where}); a route's limit uses store.child() of the plugin's store, as before`)
  if (options.store !== undefined && typeof options.store !== 'function') invalidOption(`${where}.store`, 'a store class (constructed with the options, as before)', options.store)
  const store = options.store ?? base?.store
  const o = options
  const hook = o.hook ?? base?.hook ?? 'onRequest'
  if (!HOOKS.includes(hook)) invalidOption(`${where}.hook`, HOOKS.join(', '), hook)
  const draft = o.enableDraftSpec ?? (base?.labels === DRAFT)
  if (typeof draft !== 'boolean') invalidOption(`${where}.enableDraftSpec`, 'a boolean', draft)
  const labels = draft ? DRAFT : LEGACY
  return {
    max: o.max === undefined ? base?.max ?? 1000 : countOrFunction(o.max, `${where}.max`),
    timeWindow: o.timeWindow === undefined ? base?.timeWindow ?? 60_000 : windowOrFunction(o.timeWindow, `${where}.timeWindow`),
    keyGenerator: o.keyGenerator === undefined ? base?.keyGenerator ?? ipKey(subnetOf(o.ipv6Subnet, where)) : fn(o.keyGenerator, `${where}.keyGenerator`),
    allowList: o.allowList === undefined ? base?.allowList : allowListOf(o.allowList, `${where}.allowList`),
    groupId: o.groupId === undefined ? base?.groupId : groupIdOf(o.groupId, where),
    hook,
    skipOnError: bool(o.skipOnError, `${where}.skipOnError`) ?? base?.skipOnError ?? false,
    labels,
    onAllowed: headerList([labels.limit, labels.remaining, labels.reset], o.addHeadersOnExceeding, `${where}.addHeadersOnExceeding`, base?.onAllowed),
    onRejected: headerList([labels.limit, labels.remaining, labels.reset, labels.retryAfter], o.addHeaders, `${where}.addHeaders`, base?.onRejected),
    errorResponseBuilder: o.errorResponseBuilder === undefined ? base?.errorResponseBuilder ?? defaultErrorResponse : fn(o.errorResponseBuilder, `${where}.errorResponseBuilder`),
    onExceeding: o.onExceeding === undefined ? base?.onExceeding : fn(o.onExceeding, `${where}.onExceeding`),
    onExceeded: o.onExceeded === undefined ? base?.onExceeded : fn(o.onExceeded, `${where}.onExceeded`),
    ban: o.ban === undefined ? base?.ban ?? -1 : banOf(o.ban, `${where}.ban`),
    onBanReach: o.onBanReach === undefined ? base?.onBanReach : fn(o.onBanReach, `${where}.onBanReach`),
    continueExceeding: bool(o.continueExceeding, `${where}.continueExceeding`) ?? base?.continueExceeding ?? false,
    exponentialBackoff: bool(o.exponentialBackoff, `${where}.exponentialBackoff`) ?? base?.exponentialBackoff ?? false,
    store
  }
}

/** -1 (off) or the rejections tolerated before 403, as the old plugin reads it (fractions truncated). */
function banOf (value: unknown, name: string): number {
  if (value === -1) return -1
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) invalidOption(name, '-1 (off) or a number of rejections >= 0', value)
  return Math.trunc(value as number)
}

function fn<T> (value: unknown, name: string): T {
  if (typeof value !== 'function') invalidOption(name, 'a function', value)
  return value as T
}

function bool (value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') invalidOption(name, 'a boolean', value)
  return value as boolean | undefined
}

function countOrFunction (value: unknown, name: string): number | KeyFn<number> {
  if (typeof value === 'function') return value as KeyFn<number>
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) invalidOption(name, 'a non-negative number or a function (request, key) => number', value)
  return Math.trunc(value as number)
}

/** Milliseconds, an `ms`-style string (`'1 minute'`, `'500ms'`), or a function. */
function windowOrFunction (value: unknown, name: string): number | KeyFn<number> {
  if (typeof value === 'function') return value as KeyFn<number>
  const ms = typeof value === 'string' ? parseDuration(value) : value
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 1) invalidOption(name, "milliseconds, a duration such as '1 minute', or a function (request, key) => ms", value)
  return Math.trunc(ms as number)
}

function allowListOf (value: unknown, name: string): (request: FastifyRequest, key: string) => MaybeAsync<boolean> {
  if (typeof value === 'function') return value as KeyFn<boolean>
  if (!Array.isArray(value)) return invalidOption(name, 'an array of keys or a function (request, key) => boolean', value)
  const keys = new Set(value.map(String))
  const list = (_request: FastifyRequest, key: string): boolean => keys.has(key)
  KEY_LISTS.add(list)
  return list
}

/** The allow lists given as arrays of keys (the others are the user's functions). */
const KEY_LISTS = new WeakSet<object>()

/**
 * Whether an allow list was given as an array: on a route with a groupId it also matches the
 * client's key without the groupId (the old plugin compared only the key with it appended).
 */
export function isKeyList (allowList: object): boolean {
  return KEY_LISTS.has(allowList)
}

function groupIdOf (value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length === 0) invalidOption(`${where}.groupId`, 'a non-empty string', value)
  return value as string
}

function subnetOf (value: unknown, where: string): number {
  if (value === undefined) return 64
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 128) invalidOption(`${where}.ipv6Subnet`, 'an integer from 0 to 128', value)
  return value as number
}

/** Every header on by default; an object switches single headers off (or back on). */
function headerList (names: readonly string[], switches: RateLimitAddHeaders | undefined, name: string, inherited: readonly string[] | undefined): readonly string[] {
  if (switches === undefined) return inherited !== undefined && inherited.every((h) => names.includes(h)) ? inherited : names
  if (switches === null || typeof switches !== 'object') invalidOption(name, 'an object of header names to booleans', switches)
  rejectUnknownKeys('this header switch', switches, names, name)
  return names.filter((header) => (switches as Record<string, boolean | undefined>)[header] !== false)
}

/**
 * The old plugin's default key: `request.ip`, IPv4-mapped IPv6 as IPv4, other IPv6 masked to
 * `subnet` bits (written as the masked groups and the prefix length).
 */
export function ipKey (subnet: number): (request: FastifyRequest) => string {
  return (request) => normalizeIP(request.ip ?? '', subnet)
}

/** `request.ip` as the old plugin keys it; exported for keyGenerators that wrap it. */
export function normalizeIP (ip: string, subnet = 64): string {
  if (!ip.includes(':')) return ip.toLowerCase()
  const zone = ip.indexOf('%')
  const groups = expandIpv6((zone === -1 ? ip : ip.slice(0, zone)).toLowerCase())
  if (groups === undefined) return ip.toLowerCase()
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`
  }
  const masked = groups.map((g, i) => {
    const keep = Math.max(0, Math.min(16, subnet - i * 16))
    return keep === 0 ? 0 : g & ((0xffff << (16 - keep)) & 0xffff)
  })
  return `${masked.map((g) => g.toString(16)).join(':')}/${subnet}`
}
