/**
 * Custom header maps: `{ 'x-quota-left': { value: 'remaining', when: 'always' } }`. Names are
 * validated and lower-cased, static values checked, and the map compiled into two lists (always /
 * throttled) at registration; the request path only walks them. Values are always integers.
 */
import type { Decision } from '../../types/decision.js'
import { describeValue, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { retryAfterSeconds, toSeconds } from '../decision.js'
import { writeRetryAfter, type HeaderTarget, type HeaderWriter } from './header-target.js'

/** Values a header may carry on every response. */
export type HeaderField =
  /** The limit of the rate in force. */
  | 'limit'
  /** Units left after this request, an integer in [0, limit]. */
  | 'remaining'
  /** Whole seconds (rounded up) until the capacity is fully restored. */
  | 'reset'
  /** Whole milliseconds until the capacity is fully restored. */
  | 'reset-ms'
  /** The window of the rate in whole seconds (rounded up). */
  | 'window'

/** Values that only mean something on a rejection, so they are only sent on one. */
export type ThrottledHeaderField =
  /** Whole seconds (rounded up) to wait before retrying. */
  | 'retry-after'
  /** Whole milliseconds to wait before retrying. */
  | 'retry-after-ms'

/** When a header is sent: on every limited response, or only on rejections. */
export type HeaderWhen = 'always' | 'throttled'

/** One header of a custom map. A bare field name means `{ value: field }`. */
export type CustomHeaderSpec =
  | HeaderField
  | ThrottledHeaderField
  | {
    value: HeaderField
    /** @default 'always' */
    when?: HeaderWhen
  }
  | {
    value: ThrottledHeaderField
    /** @default 'throttled' (the only choice: a wait of 0 on an allowed response would be noise) */
    when?: 'throttled'
  }
  | {
    /** A fixed text, checked and stored once. */
    static: string
    /** @default 'always' */
    when?: HeaderWhen
  }

/** A custom header map: header name → what it carries. `retry-after` is added on 429 unless the map names it. */
export interface CustomHeaders {
  readonly [name: string]: CustomHeaderSpec
}

type Read = (decision: Decision, windowMs: number) => string | number

const FIELDS: Readonly<Record<HeaderField | ThrottledHeaderField, Read>> = {
  limit: (d) => d.limit,
  remaining: (d) => d.remaining,
  reset: (d) => toSeconds(d.resetMs),
  'reset-ms': (d) => Math.max(0, Math.ceil(d.resetMs)),
  window: (_d, windowMs) => toSeconds(windowMs),
  'retry-after': retryAfterSeconds,
  'retry-after-ms': (d) => d.retryAfterMs < 0 ? -1 : Math.ceil(d.retryAfterMs)
}
const THROTTLED_ONLY = new Set(['retry-after', 'retry-after-ms'])
/** RFC 9110 token characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-zA-Z-]+$/
/** Visible ASCII, spaces and tabs (RFC 9110 field values without obsolete text). */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/

interface Entry {
  readonly name: string
  readonly read: Read
  /** Waits of -1 (never) are left out: there is nothing honest to say. */
  readonly isWait: boolean
}

function compileEntry (name: string, spec: unknown): { entry: Entry, when: HeaderWhen } {
  const option = `headers['${name}']`
  if (!HEADER_NAME.test(name)) invalidOption('headers', 'header names made of token characters', name)
  if (typeof spec === 'string') spec = { value: spec }
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    invalidOption(option, "a field name ('limit', 'remaining', 'reset', ...) or { value, when } or { static, when }", spec)
  }
  rejectUnknownKeys(option, spec, ['value', 'static', 'when'])
  const { value, static: text, when } = spec as { value?: unknown, static?: unknown, when?: unknown }
  if ((value === undefined) === (text === undefined)) invalidOption(option, "exactly one of 'value' and 'static'", spec)
  if (when !== undefined && when !== 'always' && when !== 'throttled') invalidOption(`${option}.when`, "'always' or 'throttled'", when)
  if (text !== undefined) {
    if (typeof text !== 'string' || !HEADER_VALUE.test(text)) invalidOption(`${option}.static`, 'a string of visible ASCII characters', text)
    const fixed = text
    return { entry: { name, read: () => fixed, isWait: false }, when: when ?? 'always' }
  }
  if (typeof value !== 'string' || !Object.hasOwn(FIELDS, value)) {
    invalidOption(`${option}.value`, `one of ${Object.keys(FIELDS).join(', ')}`, value)
  }
  const throttledOnly = THROTTLED_ONLY.has(value)
  if (throttledOnly && when === 'always') {
    invalidOption(`${option}.when`, `'throttled' for '${value}' (a wait is only meaningful on a rejection)`, when)
  }
  return {
    entry: { name, read: FIELDS[value as HeaderField], isWait: throttledOnly },
    when: throttledOnly ? 'throttled' : when ?? 'always'
  }
}

/** Compiles a custom map; throws `TRAFFIK_ERR_INVALID_OPTION` naming the bad entry. */
export function customWriter (map: object): HeaderWriter {
  const always: Entry[] = []
  const throttled: Entry[] = []
  const seen = new Set<string>()
  for (const [rawName, spec] of Object.entries(map)) {
    const name = rawName.toLowerCase()
    if (seen.has(name)) invalidOption('headers', 'header names that differ in more than case', rawName)
    seen.add(name)
    const { entry, when } = compileEntry(name, spec)
    if (when === 'always') always.push(entry)
    else throttled.push(entry)
  }
  if (seen.size === 0) invalidOption('headers', 'a map with at least one header (use false for none)', describeValue(map))
  const addRetryAfter = !seen.has('retry-after')
  return function writeCustom (reply: HeaderTarget, decision: Decision, windowMs: number): void {
    for (const entry of always) reply.header(entry.name, entry.read(decision, windowMs))
    if (decision.allowed) return
    for (const entry of throttled) {
      if (entry.isWait && decision.retryAfterMs < 0) continue
      reply.header(entry.name, entry.read(decision, windowMs))
    }
    if (addRetryAfter) writeRetryAfter(reply, decision)
  }
}
