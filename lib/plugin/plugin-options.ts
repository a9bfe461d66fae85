/**
 * Plugin options → a frozen configuration, validated once at registration with coded errors.
 */
import type { FastifyRequest } from 'fastify'
import { InMemoryBackend } from '../backends/in-memory-backend.js'
import { ThrottleBackend, type BackendStartup } from '../backends/throttle-backend.js'
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { CompiledLists, type ListsOptions } from '../throttle/lists.js'
import type { DecisionEvent, MaybePromise, ThrottleOptions } from '../throttle/option-types.js'
import { assertKnownOptions } from '../throttle/throttle-options.js'
import { Throttle } from '../throttle/throttle.js'
import { validateOverridesOptions, type OverridesOptions } from './fleet-overrides.js'
import { validateTelemetry, type TelemetryOptions } from './telemetry-options.js'

/** Options of `app.register(traffik, options)`. */
export interface TraffikPluginOptions {
  /**
   * The default backend. The plugin owns it: initialized in `onReady`, closed in `onClose`
   * (reset first when it is not persistent).
   * @default new InMemoryBackend()
   */
  backend?: ThrottleBackend
  /**
   * More backends whose lifecycle the plugin owns, for dynamic routing.
   * @default []
   */
  backends?: ThrottleBackend[]
  /**
   * Picks the backend of each request (sync or async); the result is stored on
   * `request.throttleBackend` and used by throttles with `dynamicBackend`. `null`/`undefined` means
   * the default `backend` (or, for `dynamicBackend: 'required'`, an error). See `resolveBackendAt`
   * for when it runs.
   * @default none
   */
  resolveBackend?: (request: FastifyRequest) => MaybePromise<ThrottleBackend | null | undefined>
  /**
   * When `resolveBackend` runs. `'limit'`: when the first dynamic throttle of the request runs, so
   * after the hooks before it (your authentication in `preHandler`, route-level hooks), and only for
   * requests a dynamic throttle decides. `'onRequest'`: in a root `onRequest` hook, for every
   * request (use it when your own code reads `request.throttleBackend` before any throttle runs;
   * the tenant must then be known in `onRequest`).
   * @default 'limit'
   */
  resolveBackendAt?: 'limit' | 'onRequest'
  /**
   * Throttle options (or an array of them) applied to every route that does not say
   * `config: { rateLimit: false }`. Without an explicit `uid` each route counts on its own;
   * with one, all routes share that budget.
   * @default none
   */
  global?: ThrottleOptions | ThrottleOptions[]
  /**
   * Options every throttle created by the plugin inherits (route limits, `global`, `fastify.throttle.create`).
   * @default {}
   */
  defaults?: ThrottleOptions
  /**
   * Which route hook enforces limits: `'preHandler'` runs after authentication and body parsing,
   * `'onRequest'` rejects at the cheapest point.
   * @default 'preHandler'
   */
  hook?: 'preHandler' | 'onRequest'
  /**
   * Called synchronously with every decision of the plugin's throttles (route limits, `throttle.hook`,
   * `hit`, `reserve`; not `check`/`stat`), and with every failed backend call: count allowed / throttled /
   * errors for metrics. Keep it cheap; an exception it throws is logged and ignored.
   * @default none (and then nothing is spent on it)
   */
  onDecision?: (event: DecisionEvent) => void
  /**
   * Allow and deny lists for every route of the scope, limited or not (an `onRequest` hook): a
   * denied client is refused with `TRAFFIK_ERR_DENIED` (403) before any route runs; an allowed
   * one is exempt from every throttle of this plugin. Matched on `request.ip` or a function of
   * the request (`match: 'identifier'` is for a throttle's own `lists`). See docs/lists.md.
   * @default none
   */
  lists?: ListsOptions
  /**
   * How the backends the plugin owns start when they cannot connect, for those that do not set
   * their own `startup` option:
   * - `'required'`: `app.ready()` rejects with the backend's coded error;
   * - `'degraded'`: the app starts; until a backend connects (it keeps trying in the background),
   *   its calls fail at once with `TRAFFIK_ERR_BACKEND_UNAVAILABLE` and `onError` answers;
   * - `'on-error'`: `'degraded'` when `defaults.onError` lets requests through without the backend
   *   (`'allow'`, or a handler such as `failover(...)`), `'required'` when it fails closed
   *   (`'throttle'`, the default) or raises.
   * @default 'required'
   */
  startup?: 'required' | 'degraded' | 'on-error'
  /**
   * OpenTelemetry metrics (decisions by outcome, near-limit, backend errors, backend latency) and a
   * span per backend call, for every throttle of this instance. `true` uses the global meter and
   * tracer of `@opentelemetry/api` (an optional peer dependency, loaded only then); or hand in your
   * own `meter` / `tracer`. See docs/observability.md.
   * @default false (and then nothing is spent on it)
   */
  telemetry?: boolean | TelemetryOptions
  /**
   * Fleet-wide overrides (`fastify.throttle.overrides`): kept in the default backend, read by
   * every instance every `refreshMs`. `false`: this instance neither reads nor writes them.
   * See docs/overrides.md.
   * @default { refreshMs: 1000, key: 'traffik:overrides' }
   */
  overrides?: false | OverridesOptions
  /**
   * Wiring checks, each reported once with a coded message (see docs/wiring-checks.md);
   * `false` turns them all off.
   * @default { unseenRoutes: 'error', proxyHeaders: true }
   */
  validate?: false | WiringChecks
}

/** The wiring checks of `validate`. */
export interface WiringChecks {
  /**
   * A route with `config.rateLimit` (or under `global`) that the plugin never saw, because the
   * plugin was registered after it or without `await`: `'error'` answers its requests with
   * `TRAFFIK_ERR_UNSEEN_ROUTE` (HTTP 500) and logs it once, `'warn'` logs once at warn and lets the
   * route run unlimited, `'off'` does not check.
   * @default 'error'
   */
  unseenRoutes?: 'error' | 'warn' | 'off'
  /**
   * Warn once (`TRAFFIK_WARN_FORWARDED_UNTRUSTED`) when a request identified by its IP carries
   * `X-Forwarded-For` / `Forwarded` while Fastify does not trust proxies (every client behind the
   * proxy would share one budget), and once (`TRAFFIK_WARN_TRUST_PROXY_ALL`) when `trustProxy: true`
   * trusts a forwarded address any client can write.
   * @default true
   */
  proxyHeaders?: boolean
}

const PLUGIN_OPTIONS: readonly string[] = ['backend', 'backends', 'resolveBackend', 'resolveBackendAt', 'global', 'defaults', 'hook', 'onDecision', 'lists', 'startup', 'telemetry', 'overrides', 'validate']
const WIRING_CHECKS: readonly string[] = ['unseenRoutes', 'proxyHeaders']

export interface PluginConfig {
  readonly backend: ThrottleBackend
  readonly backends: readonly ThrottleBackend[]
  readonly resolveBackend: TraffikPluginOptions['resolveBackend']
  readonly global: readonly ThrottleOptions[]
  readonly defaults: Readonly<ThrottleOptions>
  readonly hook: 'preHandler' | 'onRequest'
  readonly onDecision: TraffikPluginOptions['onDecision']
  readonly lists: CompiledLists | undefined
  /** `startup` with `'on-error'` resolved: how owned backends without a `startup` of their own start. */
  readonly startup: BackendStartup
  /** Whether `defaults.onError` fails closed (`'throttle'`): a backend outage then rejects every limited request. */
  readonly failsClosed: boolean
  readonly telemetry: TelemetryOptions | undefined
  readonly resolveBackendAt: 'limit' | 'onRequest'
  readonly validate: Required<WiringChecks>
  readonly overrides: Required<OverridesOptions> | false
}

export function resolvePluginOptions (options: TraffikPluginOptions | undefined): PluginConfig {
  const opts = options ?? {}
  if (typeof opts !== 'object') invalidOption('options', 'an object', opts)
  rejectUnknownKeys('fastify-traffik', opts, PLUGIN_OPTIONS)
  const { backend = new InMemoryBackend(), backends = [], resolveBackend, resolveBackendAt = 'limit', global, defaults = {}, hook = 'preHandler', onDecision, lists, startup = 'required' } = opts
  const telemetry = validateTelemetry(opts.telemetry)
  if (!(backend instanceof ThrottleBackend)) invalidOption('backend', 'a ThrottleBackend instance', backend)
  if (!Array.isArray(backends) || !backends.every((b) => b instanceof ThrottleBackend)) {
    invalidOption('backends', 'an array of ThrottleBackend instances', backends)
  }
  if (resolveBackend !== undefined && typeof resolveBackend !== 'function') {
    invalidOption('resolveBackend', 'a function (request) => backend', resolveBackend)
  }
  if (resolveBackendAt !== 'limit' && resolveBackendAt !== 'onRequest') invalidOption('resolveBackendAt', "'limit' or 'onRequest'", resolveBackendAt)
  if (hook !== 'preHandler' && hook !== 'onRequest') invalidOption('hook', "'preHandler' or 'onRequest'", hook)
  const validate = resolveWiringChecks(opts.validate)
  const overrides = validateOverridesOptions(opts.overrides)
  if (onDecision !== undefined && typeof onDecision !== 'function') invalidOption('onDecision', 'a function (event) => void', onDecision)
  if (startup !== 'required' && startup !== 'degraded' && startup !== 'on-error') invalidOption('startup', "'required', 'degraded' or 'on-error'", startup)
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults)) {
    invalidOption('defaults', 'an object of throttle options', defaults)
  }
  assertKnownOptions(defaults, 'defaults')
  if ('uid' in defaults) invalidOption('defaults.uid', 'no uid (a uid names one budget; set it per throttle)', defaults.uid)
  // Build once now so a bad default (headers, onError, rules, ...) fails at registration even
  // before any route uses it. The rate may be left to each route.
  // eslint-disable-next-line no-new -- building it is the validation
  new Throttle({ ...defaults, rate: defaults.rate ?? null, uid: 'defaults' })
  const globalList = global === undefined ? [] : Array.isArray(global) ? global : [global]
  for (const [i, spec] of globalList.entries()) {
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) invalidOption(`global[${i}]`, 'an object of throttle options', spec)
    assertKnownOptions(spec, 'global')
    // Build it once now so a bad global limit fails at registration, not at the first route.
    // eslint-disable-next-line no-new -- building it is the validation
    new Throttle({ ...mergeThrottleOptions(defaults, spec), uid: spec.uid ?? 'global' })
  }
  return Object.freeze({
    backend,
    backends: Object.freeze([...backends]),
    resolveBackend,
    global: Object.freeze(globalList),
    defaults: Object.freeze({ ...defaults }),
    hook,
    onDecision,
    lists: lists === undefined ? undefined : new CompiledLists(lists, 'lists', false),
    startup: startup === 'on-error' ? (answersWithoutBackend(defaults.onError) ? 'degraded' : 'required') : startup,
    failsClosed: defaults.onError === undefined || defaults.onError === 'throttle',
    telemetry,
    resolveBackendAt,
    validate,
    overrides
  })
}

/** Whether an `onError` policy answers requests without the failing backend (fail open, or a handler such as failover). */
function answersWithoutBackend (onError: ThrottleOptions['onError']): boolean {
  return onError === 'allow' || typeof onError === 'function'
}

function resolveWiringChecks (validate: TraffikPluginOptions['validate']): Required<WiringChecks> {
  if (validate === false) return { unseenRoutes: 'off', proxyHeaders: false }
  if (validate === undefined) return { unseenRoutes: 'error', proxyHeaders: true }
  if (validate === null || typeof validate !== 'object' || Array.isArray(validate)) {
    invalidOption('validate', 'false or an object of wiring checks', validate)
  }
  rejectUnknownKeys('fastify-traffik', validate, WIRING_CHECKS, 'validate')
  const { unseenRoutes = 'error', proxyHeaders = true } = validate
  if (unseenRoutes !== 'error' && unseenRoutes !== 'warn' && unseenRoutes !== 'off') {
    invalidOption('validate.unseenRoutes', "'error', 'warn' or 'off'", unseenRoutes)
  }
  if (typeof proxyHeaders !== 'boolean') invalidOption('validate.proxyHeaders', 'a boolean', proxyHeaders)
  return { unseenRoutes, proxyHeaders }
}

/**
 * A throttle's options over the plugin's defaults: the throttle's own values win, except `rules`,
 * which add up (the defaults' rules first), so a global `bypassIf` keeps applying.
 */
export function mergeThrottleOptions<T extends ThrottleOptions> (defaults: Readonly<ThrottleOptions>, options: T): T {
  const merged = { ...defaults, ...options }
  if (defaults.rules !== undefined && options.rules !== undefined) {
    if (!Array.isArray(options.rules)) return merged // the throttle reports the bad value
    merged.rules = [...defaults.rules, ...options.rules]
  }
  return merged
}
