/**
 * Rules decide whether a throttle applies to a request: `throttleIf(...)` gates (the throttle
 * applies only when every gate matches) and `bypassIf(...)` exemptions (any match skips it). A
 * rule matches when all of its criteria match: methods, an anchored path glob, a predicate.
 * Globs are compiled once; cheap rules run before predicates; a skipped request touches nothing.
 */
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { mapMaybe } from './maybe-promise.js'

const RULE_CRITERIA: readonly string[] = ['methods', 'path', 'when']

/** The request fields rules read. A Fastify request fits. */
export interface RuleRequest {
  method?: string
  url?: string
}

/** A rule predicate, sync or async. Throwing fails the request (500), like an identifier. */
export type RulePredicate<R = any> = (request: R) => boolean | PromiseLike<boolean>

/** What a rule matches. Every criterion given must match; a rule without criteria is rejected. */
export interface RuleCriteria<R = any> {
  /** HTTP methods, any case: `'GET'` or `['POST', 'PUT']`. */
  methods?: string | readonly string[]
  /**
   * Path globs matched against the request path without its query string, anchored at both
   * ends: `*` is one segment (or part of one), `**` any number of segments. `/api/*` matches
   * `/api/x` but not `/api/x/y`; `/api/**` matches `/api`, `/api/x` and `/api/x/y`.
   * A RegExp is used as given. Several globs: any may match.
   */
  path?: string | RegExp | ReadonlyArray<string | RegExp>
  /** A predicate of the request, sync or async. */
  when?: RulePredicate<R>
}

/** A compiled rule. Build it with `throttleIf` or `bypassIf`. */
export interface Rule<R = any> {
  readonly kind: 'throttle' | 'bypass'
  /** Whether the method and path criteria match (true when there are none). */
  readonly matchesStatic: (request: RuleRequest) => boolean
  readonly when: RulePredicate<R> | undefined
  readonly description: string
}

const RULE = Symbol.for('fastify-traffik.rule')

/** The throttle applies only to requests this rule matches. */
export function throttleIf<R = any> (criteria: RuleCriteria<R> | RulePredicate<R>): Rule<R> {
  return compileRule('throttle', criteria)
}

/** The throttle skips requests this rule matches: no headers, no backend call. */
export function bypassIf<R = any> (criteria: RuleCriteria<R> | RulePredicate<R>): Rule<R> {
  return compileRule('bypass', criteria)
}

export function isRule (value: unknown): value is Rule {
  return value !== null && typeof value === 'object' && (value as Record<symbol, unknown>)[RULE] === true
}

function compileRule<R> (kind: 'throttle' | 'bypass', input: RuleCriteria<R> | RulePredicate<R>): Rule<R> {
  const name = kind === 'throttle' ? 'throttleIf' : 'bypassIf'
  const criteria: RuleCriteria<R> = typeof input === 'function' ? { when: input } : input
  if (criteria === null || typeof criteria !== 'object' || Array.isArray(criteria)) {
    invalidOption(name, '{ methods?, path?, when? } or a predicate function', input)
  }
  rejectUnknownKeys(name, criteria, RULE_CRITERIA, name)
  const { methods, path, when } = criteria
  if (methods === undefined && path === undefined && when === undefined) {
    invalidOption(name, 'at least one of methods, path, when', criteria)
  }
  if (when !== undefined && typeof when !== 'function') invalidOption(`${name}.when`, 'a function (request) => boolean', when)
  const methodSet = methods === undefined ? undefined : compileMethods(name, methods)
  const pathTest = path === undefined ? undefined : compilePaths(name, path)
  const matchesStatic = (request: RuleRequest): boolean => {
    if (methodSet !== undefined && !methodSet.has(request.method ?? '')) return false
    return pathTest === undefined || pathTest(pathOf(request.url))
  }
  const description = `${name}(${[methods && `methods ${String(methods)}`, path && `path ${String(path)}`, when && 'predicate'].filter(Boolean).join(', ')})`
  const rule = { kind, matchesStatic, when, description, [RULE]: true }
  return Object.freeze(rule)
}

function compileMethods (name: string, methods: string | readonly string[]): Set<string> {
  const list = typeof methods === 'string' ? [methods] : methods
  if (!Array.isArray(list) || list.length === 0 || !list.every((m) => typeof m === 'string' && /^[A-Za-z]+$/.test(m))) {
    invalidOption(`${name}.methods`, "an HTTP method or a non-empty array of them (e.g. ['GET', 'HEAD'])", methods)
  }
  return new Set(list.map((m: string) => m.toUpperCase()))
}

function compilePaths (name: string, path: string | RegExp | ReadonlyArray<string | RegExp>): (p: string) => boolean {
  const list = Array.isArray(path) ? path : [path]
  if (list.length === 0) invalidOption(`${name}.path`, 'a glob, a RegExp, or a non-empty array of those', path)
  const patterns = list.map((p: unknown) => {
    if (p instanceof RegExp) return p
    if (typeof p !== 'string' || !p.startsWith('/')) invalidOption(`${name}.path`, "globs starting with '/' (e.g. '/api/*')", p)
    return globToRegExp(p as string)
  })
  if (patterns.length === 1) {
    const only = patterns[0]!
    return (p) => only.test(p)
  }
  return (p) => patterns.some((pattern) => pattern.test(p))
}

/**
 * Compiles a glob, anchored at both ends. `**` as a whole segment matches zero or more segments;
 * `*` as a whole segment matches exactly one non-empty segment; inside a segment `*` matches any
 * characters but '/'. Everything else is literal.
 */
export function globToRegExp (glob: string): RegExp {
  const segments = glob.split('/').slice(1)
  let source = '^'
  for (const segment of segments) {
    if (segment === '**') {
      source += '(?:/.*)?'
      continue
    }
    source += '/'
    if (segment === '*') {
      source += '[^/]+'
      continue
    }
    source += segment.split('**').map((part) => part.split('*').map(escapeRegExp).join('[^/]*')).join('.*')
  }
  if (source === '^') source += '/'
  return new RegExp(source + '$')
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The request path without its query string. */
function pathOf (url: string | undefined): string {
  if (url === undefined) return '/'
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/**
 * Compiles a throttle's rules into one gate: `(request) => applies`, sync unless a predicate
 * answers with a promise. Rules without predicates run first, then predicates in declared order.
 * Undefined when there are no rules, so a throttle without rules pays nothing.
 */
export function compileRules (rules: unknown): ((request: RuleRequest) => boolean | Promise<boolean>) | undefined {
  if (rules === undefined) return undefined
  if (!Array.isArray(rules) || !rules.every(isRule)) {
    invalidOption('rules', 'an array of throttleIf(...) / bypassIf(...) rules', rules)
  }
  if (rules.length === 0) return undefined
  const ordered = [...rules.filter((r) => r.when === undefined), ...rules.filter((r) => r.when !== undefined)]
  const firstPredicate = ordered.findIndex((r) => r.when !== undefined)
  const staticCount = firstPredicate === -1 ? ordered.length : firstPredicate

  const from = (request: RuleRequest, index: number): boolean | Promise<boolean> => {
    for (let i = index; i < ordered.length; i++) {
      const rule = ordered[i]!
      const bypass = rule.kind === 'bypass'
      if (!rule.matchesStatic(request)) {
        if (bypass) continue // an exemption that does not match changes nothing
        return false // a gate that does not match: the throttle does not apply
      }
      if (i < staticCount) {
        if (bypass) return false
        continue
      }
      const answer = rule.when!(request)
      if (typeof answer !== 'object' || answer === null) {
        if (Boolean(answer) === bypass) return false
        continue
      }
      return mapMaybe(answer, (matched) => Boolean(matched) === bypass ? false : from(request, i + 1)) as Promise<boolean>
    }
    return true
  }
  return (request) => from(request, 0)
}
