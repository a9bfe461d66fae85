/**
 * Every coded error of fastify-traffik, in one place. Codes are documented in
 * docs/errors.md; a test keeps the two in step.
 */
import createError from '@fastify/error'

/**
 * A request was rejected by a throttle (HTTP 429). Built without a stack trace: it is an answer,
 * not a bug. The argument is the rest of the sentence: `retry in 1 second`, `retry in 60 seconds`,
 * or why waiting cannot help.
 */
export const RateLimitedError = createError(
  'TRAFFIK_ERR_RATE_LIMITED',
  'Rate limit exceeded, %s',
  429,
  Error,
  false
)

/** A client on a deny list was refused (HTTP 403 unless the list says otherwise). No stack trace: it is an answer. */
export const DeniedError = createError(
  'TRAFFIK_ERR_DENIED',
  'Access denied',
  403,
  Error,
  false
)

/**
 * A client banned by a throttle's escalation policy (HTTP 403 unless the policy's
 * `ban.statusCode` says otherwise). Built without a stack trace, like the 429.
 */
export const BannedError = createError(
  'TRAFFIK_ERR_BANNED',
  'Banned for repeated rate limit violations, retry in %s second(s)',
  403,
  Error,
  false
)

/** An option has a wrong type or value. Thrown at registration or construction. */
export const InvalidOptionError = createError(
  'TRAFFIK_ERR_INVALID_OPTION',
  "Invalid option '%s': %s (got %s)",
  500,
  TypeError
)

/** A rate string or rate object cannot be parsed. */
export const InvalidRateError = createError(
  'TRAFFIK_ERR_INVALID_RATE',
  "Invalid rate for '%s': %s (got %s)",
  500,
  TypeError
)

/** A route's `config.rateLimit` is not an options object, a Throttle, an array of those, or `false`. */
export const InvalidRouteConfigError = createError(
  'TRAFFIK_ERR_INVALID_ROUTE_CONFIG',
  "Invalid config.rateLimit on route '%s': %s (got %s)",
  500,
  TypeError
)

/** Two options that exclude each other were both given (e.g. `backend` and `dynamicBackend`). */
export const ConflictingOptionsError = createError(
  'TRAFFIK_ERR_CONFLICTING_OPTIONS',
  "Options '%s' and '%s' cannot be used together: %s",
  500,
  TypeError
)

/** An identifier function returned something other than a string or EXEMPTED (request time, HTTP 500). */
export const InvalidIdentifierError = createError(
  'TRAFFIK_ERR_INVALID_IDENTIFIER',
  "The identifier of throttle '%s' returned %s; expected a string or EXEMPTED",
  500,
  TypeError
)

/** A cost function returned a negative, fractional or non-numeric cost (request time, HTTP 500). */
export const InvalidCostError = createError(
  'TRAFFIK_ERR_INVALID_COST',
  "The cost of throttle '%s' must be a non-negative integer (got %s)",
  500,
  TypeError
)

/**
 * A throttle with `dynamicBackend: 'required'` found no backend for the request: nothing set
 * `request.throttleBackend`, `resolveBackend` answered none, and no `backend.run()` is active
 * (request time, HTTP 500).
 */
export const NoBackendError = createError(
  'TRAFFIK_ERR_NO_BACKEND',
  "Throttle '%s' requires a backend for this request and none was chosen: resolveBackend returned none and nothing set request.throttleBackend",
  500,
  Error
)

/**
 * A route's limits were never built because the plugin never saw the route: it was registered
 * after the route, or without `await` (request time, HTTP 500; see `validate.unseenRoutes`).
 */
export const UnseenRouteError = createError(
  'TRAFFIK_ERR_UNSEEN_ROUTE',
  "Route '%s' has %s, but fastify-traffik never saw the route, so nothing limits it: register the plugin before the routes, with await (await app.register(traffik, options)), or in a parent of the plugin that declares them",
  500,
  Error
)

/** A rate function returned something `parseRate` rejects (request time, HTTP 500). */
export const InvalidDynamicRateError = createError(
  'TRAFFIK_ERR_INVALID_DYNAMIC_RATE',
  "The rate function of throttle '%s' returned an invalid rate: %s",
  500,
  TypeError
)

/** A backend operation failed. `cause` holds the driver's error. */
export const BackendError = createError('TRAFFIK_ERR_BACKEND', 'Backend %s failed: %s', 503)

/** A backend operation did not answer within the backend's `timeoutMs`. */
export const BackendTimeoutError = createError(
  'TRAFFIK_ERR_BACKEND_TIMEOUT',
  'Backend %s did not answer within %s ms',
  503,
  BackendError as unknown as ErrorConstructor
)

/** A backend was used after `close()`. */
export const BackendClosedError = createError(
  'TRAFFIK_ERR_BACKEND_CLOSED',
  'Backend %s is closed',
  503,
  BackendError as unknown as ErrorConstructor
)

/**
 * A backend that started degraded (`startup: 'degraded'`) has not connected yet: calls fail at
 * once, without waiting for a connection, while it keeps connecting in the background.
 * `cause` holds the last connection error.
 */
export const BackendUnavailableError = createError(
  'TRAFFIK_ERR_BACKEND_UNAVAILABLE',
  'Backend %s is not connected yet (connecting in the background): %s',
  503,
  BackendError as unknown as ErrorConstructor
)

/** A method was called that a backend or strategy does not support. */
export const UnsupportedError = createError('TRAFFIK_ERR_UNSUPPORTED', '%s', 500)

/** An optional peer dependency an option needs is not installed. */
export const MissingDependencyError = createError(
  'TRAFFIK_ERR_MISSING_DEPENDENCY',
  'Package %s is not installed; it is needed for %s',
  500
)

/** Every error constructor, by code. docs/errors.md lists each of them. */
export const errorCodes = {
  TRAFFIK_ERR_RATE_LIMITED: RateLimitedError,
  TRAFFIK_ERR_DENIED: DeniedError,
  TRAFFIK_ERR_BANNED: BannedError,
  TRAFFIK_ERR_INVALID_OPTION: InvalidOptionError,
  TRAFFIK_ERR_INVALID_RATE: InvalidRateError,
  TRAFFIK_ERR_INVALID_ROUTE_CONFIG: InvalidRouteConfigError,
  TRAFFIK_ERR_CONFLICTING_OPTIONS: ConflictingOptionsError,
  TRAFFIK_ERR_INVALID_IDENTIFIER: InvalidIdentifierError,
  TRAFFIK_ERR_INVALID_COST: InvalidCostError,
  TRAFFIK_ERR_INVALID_DYNAMIC_RATE: InvalidDynamicRateError,
  TRAFFIK_ERR_UNSEEN_ROUTE: UnseenRouteError,
  TRAFFIK_ERR_NO_BACKEND: NoBackendError,
  TRAFFIK_ERR_BACKEND: BackendError,
  TRAFFIK_ERR_BACKEND_TIMEOUT: BackendTimeoutError,
  TRAFFIK_ERR_BACKEND_CLOSED: BackendClosedError,
  TRAFFIK_ERR_BACKEND_UNAVAILABLE: BackendUnavailableError,
  TRAFFIK_ERR_UNSUPPORTED: UnsupportedError,
  TRAFFIK_ERR_MISSING_DEPENDENCY: MissingDependencyError
} as const

/** Renders any value for an error message: short, printable, never throws. */
export function describeValue (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? value.slice(0, 77) + '...' : value)
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`
  if (typeof value === 'bigint') return `${value}n`
  if (value === null || typeof value !== 'object') return String(value)
  if (Array.isArray(value)) return `array(${value.length})`
  try {
    const json = JSON.stringify(value)
    return json.length > 80 ? json.slice(0, 77) + '...' : json
  } catch {
    return Object.prototype.toString.call(value)
  }
}

/** Throws InvalidOptionError naming the option, what was expected, and the bad value. */
export function invalidOption (option: string, expected: string, value: unknown): never {
  throw new InvalidOptionError(option, expected, describeValue(value))
}
