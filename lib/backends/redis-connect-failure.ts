/**
 * Connection failures that say what happened. A failure that waiting cannot cure (a wrong or
 * missing password, nothing listening, an unknown host, a TLS handshake refused) is reported as
 * soon as the client sees it, with its cause in the message and in `cause`; a connection that
 * is still not ready at the deadline is reported as a timeout that names the last error seen.
 * The same for every client library: the errors are recognised by their codes and the server's
 * replies, which the libraries pass on as they are.
 */
import { BackendError, BackendTimeoutError } from '../errors.js'
import { withDeadline } from './backend-guard.js'
import type { RedisDriver } from './redis-driver.js'

/** Node's socket and DNS codes that no retry cures within a connect timeout. */
const DEFINITIVE_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (nothing listens at that address)',
  ENOTFOUND: 'unknown host (DNS found no such name)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable'
}

/** The server's error replies that no retry cures, by their first word. */
const DEFINITIVE_REPLIES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\bWRONGPASS\b/, 'wrong password or user'],
  [/\bNOAUTH\b/, 'the server requires a password and none was given'],
  [/\bNOPERM\b/, 'the user lacks a permission the backend needs'],
  [/no password is set|without any password configured/i, 'a password was given but the server has none set']
]

/** TLS failures: OpenSSL's and Node's codes, or OpenSSL's library tag. */
function isTlsFailure (error: Error & { code?: unknown, library?: unknown }): boolean {
  if (typeof error.code === 'string' && /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/.test(error.code)) return true
  return error.library === 'SSL routines' || /\b(SSL|TLS) (routines|handshake)|wrong version number|certificate/i.test(error.message)
}

/** A client's message on one line (GLIDE's span several), so a log line holds the whole cause. */
export function oneLine (error: Error | undefined): string {
  return String(error?.message).replace(/\s+/g, ' ').trim()
}

/** What a connection error means when no retry can cure it; undefined when waiting might. */
export function definitiveFailure (error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && DEFINITIVE_CODES[code] !== undefined) return DEFINITIVE_CODES[code]
  const message = String(error.message)
  for (const [pattern, meaning] of DEFINITIVE_REPLIES) if (pattern.test(message)) return meaning
  // A library may wrap the socket error: look one level down.
  const cause = (error as { cause?: unknown }).cause
  if (cause instanceof Error && cause !== error) {
    const inner = definitiveFailure(cause)
    if (inner !== undefined) return inner
  }
  // An AggregateError (Node's happy-eyeballs tries every address of a host).
  const errors = (error as { errors?: unknown }).errors
  for (const inner of Array.isArray(errors) ? errors as unknown[] : []) {
    const meaning = definitiveFailure(inner)
    if (meaning !== undefined) return meaning
  }
  if (isTlsFailure(error)) return 'TLS handshake failed'
  return undefined
}

/**
 * Resolves once the driver is ready (starting a lazy client). Rejects with BackendError as soon
 * as a definitive failure is seen, and with BackendTimeoutError naming the last error when the
 * connection is not ready within `timeoutMs`.
 */
export async function waitUntilReady (driver: RedisDriver, timeoutMs: number, backendName = 'RedisBackend'): Promise<void> {
  if (driver.ready) return
  const controller = new AbortController()
  const operation = `${backendName}.initialize`
  let lastError: Error | undefined
  let finished = false
  let failFast: (error: Error) => void = () => {}
  const definitive = new Promise<never>((resolve, reject) => {
    failFast = (error) => {
      finished = true
      reject(error)
    }
  })
  const seen = (error: Error): void => {
    lastError = error
    const meaning = definitiveFailure(error)
    if (meaning !== undefined) failFast(new BackendError(operation, `could not connect to Redis (${driver.name}): ${meaning}: ${oneLine(error)}`, { cause: error }))
  }
  // A PING once connected: some clients report ready before the server accepted them (a
  // missing password shows only at the first command). A PING that fails for a reason that may
  // pass (the connection dropped) waits for the next connection, until the deadline.
  const connecting = (async () => {
    for (;;) {
      await driver.connect(seen, controller.signal)
      try {
        await driver.ping()
        return
      } catch (error) {
        seen(error as Error)
        // Nobody waits any more (reported, or past the deadline): send nothing more.
        if (finished) throw error
        await new Promise((resolve) => setTimeout(resolve, 50))
        if (finished) throw error
      }
    }
  })()
  try {
    await withDeadline(Promise.race([connecting, definitive]), timeoutMs, backendName)
  } catch (error) {
    if (error instanceof BackendTimeoutError) {
      const timeout = new BackendTimeoutError(operation, timeoutMs, lastError === undefined ? undefined : { cause: lastError })
      timeout.message = `Backend ${operation} timed out: could not connect to Redis (${driver.name}) within ${timeoutMs} ms (timed out); ` +
        (lastError === undefined ? 'no error was seen: the server accepted the connection and never answered' : `the last error seen: ${oneLine(lastError)}`)
      throw timeout
    }
    if (error instanceof BackendError) throw error
    // The client gave up by itself (closed, or its reconnect strategy stopped).
    const meaning = definitiveFailure(error) ?? 'the client gave up'
    throw new BackendError(operation, `could not connect to Redis (${driver.name}): ${meaning}: ${oneLine(error as Error)}`, { cause: error })
  } finally {
    finished = true
    controller.abort()
    connecting.catch(() => {})
    definitive.catch(() => {})
  }
}
