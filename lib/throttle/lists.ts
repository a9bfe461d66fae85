/**
 * Allow and deny lists: a listed client is exempt (no limit, no headers, no backend call) or
 * refused (403 by default) before any backend is touched. Lists hold exact values and CIDR
 * ranges, given as an array or returned per request by a function (sync or async).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { DeniedError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { compileAddressList, type ListMatcher } from './address-list.js'
import { isPromiseLike } from './maybe-promise.js'
import { answerRefusal } from './refusal-answer.js'

/**
 * A list: exact values and CIDR ranges (`['10.0.0.0/8', '2001:db8::/32', '203.0.113.7']`), or a
 * function of the request and the matched value (sync or async) answering whether the client is
 * listed (`true` / `false`) or returning the list itself (return the same array each time and it
 * is compiled once).
 */
export type ListSource = readonly string[] | ((request: FastifyRequest, value: string) => boolean | readonly string[] | PromiseLike<boolean | readonly string[]>)

/** Allow and deny lists of a throttle (`lists`) or of the whole plugin (plugin option `lists`). */
export interface ListsOptions {
  /**
   * Clients exempt from the limit: no headers, no backend call.
   * @default none
   */
  allow?: ListSource
  /**
   * Clients refused before any backend is touched, with `TRAFFIK_ERR_DENIED` (403) or `onDenied`'s
   * answer. The deny list is checked first: a client on both lists is refused.
   * @default none
   */
  deny?: ListSource
  /**
   * What list entries are compared with: `'ip'` (`request.ip`, which honours `trustProxy`;
   * IPv4-mapped IPv6 matches IPv4 entries), `'identifier'` (the throttle's identifier; not on
   * the plugin's lists), or a function of the request returning the value.
   * @default 'ip'
   */
  match?: 'ip' | 'identifier' | ((request: FastifyRequest) => string)
  /**
   * The status of the refusal.
   * @default 403
   */
  deniedStatus?: number
  /**
   * Custom refusal: called with the reply (its status already set to `deniedStatus`); send a
   * reply, return a payload, or throw. Sync or async.
   * @default throws `TRAFFIK_ERR_DENIED` to Fastify's error handling
   */
  onDenied?: (request: FastifyRequest, reply: FastifyReply) => unknown
}

/** A list verdict: exempt, refused, or neither. */
export type ListVerdict = 'allow' | 'deny' | undefined

const LIST_OPTIONS: readonly string[] = ['allow', 'deny', 'match', 'deniedStatus', 'onDenied']

/** Carried by a refusal so the hook can give the reply to `onDenied`. */
const DENIED_ANSWER = Symbol('fastify-traffik.denied-answer')

type Request = FastifyRequest
type Check = (request: Request, value: string) => boolean | Promise<boolean>

/** Lists compiled once, when the throttle (or plugin) is built. */
export class CompiledLists {
  /** Whether entries are compared with the throttle's identifier (checked after it). */
  readonly byIdentifier: boolean
  readonly #value: ((request: Request) => string) | undefined
  readonly #allow: Check | undefined
  readonly #deny: Check | undefined
  readonly #status: number
  readonly #onDenied: ListsOptions['onDenied']

  constructor (options: ListsOptions, option: string, identifierAllowed: boolean) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      invalidOption(option, '{ allow?, deny?, match?, deniedStatus?, onDenied? }', options)
    }
    rejectUnknownKeys('lists', options, LIST_OPTIONS, option)
    const { allow, deny, match = 'ip', deniedStatus = 403, onDenied } = options
    if (allow === undefined && deny === undefined) invalidOption(option, 'at least one of allow, deny', options)
    if (match === 'identifier' && !identifierAllowed) {
      invalidOption(`${option}.match`, "'ip' or a function (the plugin's lists run before any throttle's identifier)", match)
    }
    if (match !== 'ip' && match !== 'identifier' && typeof match !== 'function') {
      invalidOption(`${option}.match`, "'ip', 'identifier' or a function (request) => string", match)
    }
    if (!Number.isInteger(deniedStatus) || deniedStatus < 400 || deniedStatus > 599) {
      invalidOption(`${option}.deniedStatus`, 'an HTTP error status (400 to 599)', deniedStatus)
    }
    if (onDenied !== undefined && typeof onDenied !== 'function') invalidOption(`${option}.onDenied`, 'a function (request, reply)', onDenied)
    this.byIdentifier = match === 'identifier'
    this.#value = match === 'ip' ? ipOf : typeof match === 'function' ? match : undefined
    this.#allow = allow === undefined ? undefined : compileSource(allow, `${option}.allow`)
    this.#deny = deny === undefined ? undefined : compileSource(deny, `${option}.deny`)
    this.#status = deniedStatus
    this.#onDenied = onDenied
  }

  /** The value compared with the entries, for lists not matched on the identifier. */
  valueOf (request: Request): string {
    const value = this.#value!(request)
    if (typeof value !== 'string') invalidOption('lists.match', 'a function returning a string', value)
    return value
  }

  /** Deny first, then allow. Synchronous unless a list function answers with a promise. */
  verdict (request: Request, value: string): ListVerdict | Promise<ListVerdict> {
    const deny = this.#deny?.(request, value)
    if (isPromiseLike<boolean>(deny)) return Promise.resolve(deny).then((denied) => denied ? 'deny' : this.#allowed(request, value))
    if (deny === true) return 'deny'
    return this.#allowed(request, value)
  }

  #allowed (request: Request, value: string): ListVerdict | Promise<ListVerdict> {
    const allow = this.#allow?.(request, value)
    if (isPromiseLike<boolean>(allow)) return Promise.resolve(allow).then((allowed) => allowed ? 'allow' : undefined)
    return allow === true ? 'allow' : undefined
  }

  /** The refusal: a coded error with the configured status, carrying `onDenied` for the hook. */
  refusal (): Error {
    const error = new DeniedError() as Error & { statusCode: number, [DENIED_ANSWER]?: ListsOptions['onDenied'] }
    error.statusCode = this.#status
    if (this.#onDenied !== undefined) error[DENIED_ANSWER] = this.#onDenied
    return error
  }
}

function ipOf (request: Request): string {
  return request.ip ?? ''
}

function compileSource (source: ListSource, option: string): Check {
  if (typeof source !== 'function') {
    const matcher = compileAddressList(source, option)
    return (_request, value) => matcher(value)
  }
  // A function returning a list: compile each distinct array once.
  const compiled = new WeakMap<readonly string[], ListMatcher>()
  const answer = (value: string, listed: unknown): boolean => {
    if (typeof listed === 'boolean') return listed
    if (!Array.isArray(listed)) return invalidOption(option, 'a function returning a boolean or an array of values', listed)
    let matcher = compiled.get(listed)
    if (matcher === undefined) compiled.set(listed, matcher = compileAddressList(listed, option))
    return matcher(value)
  }
  return (request, value) => {
    const listed = source(request, value)
    if (isPromiseLike(listed)) return Promise.resolve(listed).then((resolved) => answer(value, resolved))
    return answer(value, listed)
  }
}

/**
 * Answers a refused request in a hook: `onDenied` when the refusal carries one, otherwise the
 * error goes to Fastify's error handling. Any other error is passed on unchanged.
 */
export function failRequest (request: unknown, reply: { code(status: number): unknown, send(payload?: unknown): unknown, readonly sent: boolean }, error: Error, done: (error?: Error) => void): void {
  const onDenied = (error as { [DENIED_ANSWER]?: ListsOptions['onDenied'] })[DENIED_ANSWER]
  if (onDenied === undefined) {
    done(error)
    return
  }
  reply.code((error as Error & { statusCode: number }).statusCode)
  answerRefusal(reply, () => onDenied(request as never, reply as never), () => error, done)
}
