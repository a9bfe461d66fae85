/**
 * The memcached binary protocol, spoken through memjs' low-level `perform` (which picks the server
 * for a key and matches answers to requests). memjs' high-level methods hide the CAS field of the
 * protocol header, retry failed requests (an increment or a CAS write sent twice counts twice),
 * decode 64-bit counters wrongly above 2^32, run values through the client's serializer and log
 * to the console. Building the requests here avoids all of that: every request is sent once,
 * carries a CAS token when it needs one, and fails with a `MemcachedError`.
 */

/** The parts of a memjs `Client` this backend uses. A memjs `Client` fits. */
export interface MemcachedClient {
  readonly seq: number
  readonly servers: readonly MemcachedServer[]
  incrSeq(): void
  perform(key: string, request: Buffer, seq: number, callback?: (error: Error | null, response: MemcachedResponse) => void, retries?: number): void
  server(key: string): MemcachedServer | null | undefined
  close(): void
}

/** The parts of a memjs `Server` this backend uses. */
export interface MemcachedServer {
  readonly host: string
  readonly port: number
  onResponse(seq: number, handler: (response: MemcachedResponse) => void): void
  onError(seq: number, handler: (error: Error) => void): void
  write(blob: Buffer): void
  error(error: Error): void
}

/** A parsed answer as memjs hands it over. */
export interface MemcachedResponse {
  header: { opcode: number, status: number, cas: Buffer }
  extras: Buffer
  val: Buffer
}

/** A failure of memcached itself or of the connection to it. The backend wraps it as BackendError. */
export class MemcachedError extends Error {
  /** The protocol status, when memcached answered with an error status. */
  readonly status: number | undefined

  constructor (message: string, options: { status?: number, cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MemcachedError'
    this.status = options.status
  }
}

/**
 * A server left a request unanswered for the watchdog's time: its connection was dropped, and
 * every request waiting on it fails with this error. The backend reports it as a timeout.
 */
export class MemcachedHungError extends MemcachedError {
  constructor (message: string) {
    super(message)
    this.name = 'MemcachedHungError'
  }
}

/** Eight opaque bytes memcached returns with every item; a write carrying them succeeds only if the item is unchanged. */
export type CasToken = Buffer

export interface CasValue {
  value: string
  cas: CasToken
}

const OPCODE = { get: 0x00, set: 0x01, add: 0x02, replace: 0x03, delete: 0x04, increment: 0x05, decrement: 0x06, version: 0x0b, touch: 0x1c } as const
const STATUS_OK = 0x00
const STATUS_NOT_FOUND = 0x01
const STATUS_EXISTS = 0x02
const STATUS_NOT_STORED = 0x05
const STATUS_TEXT: Readonly<Record<number, string>> = {
  0x01: 'key not found',
  0x02: 'key exists',
  0x03: 'value too large',
  0x04: 'invalid arguments',
  0x05: 'item not stored',
  0x06: 'incr/decr on a non-numeric value',
  0x81: 'unknown command',
  0x82: 'out of memory',
  0x83: 'not supported',
  0x84: 'internal error',
  0x85: 'busy',
  0x86: 'temporary failure'
}

/** Expiration that makes incr/decr fail on a missing key instead of creating it. */
export const NO_CREATE = 0xffffffff

/** Sends each request once (memjs' own retries are turned off per request). */
const NO_RETRY = 1

export class MemcachedProtocol {
  readonly client: MemcachedClient
  /** When > 0, a request unanswered after this many ms resets its server's connection. */
  readonly #watchdogMs: number

  constructor (client: MemcachedClient, watchdogMs: number) {
    this.client = client
    this.#watchdogMs = watchdogMs
  }

  /** The value and CAS token at `key`, or null. */
  async get (key: string): Promise<CasValue | null> {
    const response = await this.#request('get', key, EMPTY, EMPTY)
    const status = response.header.status
    if (status === STATUS_NOT_FOUND) return null
    if (status !== STATUS_OK) throw statusError('get', status)
    return { value: response.val.toString('utf8'), cas: Buffer.from(response.header.cas) }
  }

  /**
   * `set` / `add` / `replace`, with a CAS token when given. Resolves the item's new CAS token, or
   * null when the condition failed (add: the key exists; replace/CAS: the key is gone or changed).
   */
  async store (command: 'set' | 'add' | 'replace', key: string, value: string, expiration: number, cas?: CasToken): Promise<CasToken | null> {
    const extras = Buffer.alloc(8)
    extras.writeUInt32BE(expiration, 4)
    const response = await this.#request(command, key, extras, Buffer.from(value, 'utf8'), cas)
    const status = response.header.status
    if (status === STATUS_OK) return Buffer.from(response.header.cas)
    if (status === STATUS_EXISTS || status === STATUS_NOT_FOUND || status === STATUS_NOT_STORED) return null
    throw statusError(command, status)
  }

  /** Deletes `key` (only if unchanged when `cas` is given); resolves whether it was deleted. */
  async delete (key: string, cas?: CasToken): Promise<boolean> {
    const response = await this.#request('delete', key, EMPTY, EMPTY, cas)
    const status = response.header.status
    if (status === STATUS_OK) return true
    if (status === STATUS_NOT_FOUND || status === STATUS_EXISTS) return false
    throw statusError('delete', status)
  }

  /**
   * Atomic incr/decr in one round trip. A missing key is created holding `initial` (not
   * `initial + amount`) with `expiration`; with `expiration = NO_CREATE` a missing key stays
   * missing and the call resolves null. memcached's decr stops at 0. A request that lost the
   * race to create the key was not applied and is sent again.
   */
  async counter (command: 'increment' | 'decrement', key: string, amount: number, initial: number, expiration: number): Promise<number | null> {
    const extras = Buffer.alloc(20)
    extras.writeBigUInt64BE(BigInt(amount), 0)
    extras.writeBigUInt64BE(BigInt(initial), 8)
    extras.writeUInt32BE(expiration, 16)
    for (let attempt = 0; ; attempt++) {
      const response = await this.#request(command, key, extras, EMPTY)
      const status = response.header.status
      if (status === STATUS_OK) return Number(response.val.readBigUInt64BE(0))
      if (status === STATUS_NOT_FOUND && expiration === NO_CREATE) return null
      // Two requests that find the key missing both try to create it; memcached applies neither
      // to the loser and answers NOT_STORED. The key exists now, so sending it again adds to it.
      if (status === STATUS_NOT_STORED && attempt < 3) continue
      throw statusError(command, status)
    }
  }

  /** Sets a new expiration; resolves whether the key existed. */
  async touch (key: string, expiration: number): Promise<boolean> {
    const extras = Buffer.alloc(4)
    extras.writeUInt32BE(expiration, 0)
    const response = await this.#request('touch', key, extras, EMPTY)
    const status = response.header.status
    if (status === STATUS_OK) return true
    if (status === STATUS_NOT_FOUND) return false
    throw statusError('touch', status)
  }

  /** Asks one server for its version (the health probe); resolves the version text. */
  async version (server: MemcachedServer): Promise<string> {
    return await new Promise<string>((resolve, reject) => {
      this.client.incrSeq()
      const seq = this.client.seq
      const watchdog = this.#watch(() => server, 'version')
      server.onResponse(seq, (response) => {
        watchdog.settle()
        if (response.header.status === STATUS_OK) resolve(response.val.toString('utf8'))
        else reject(statusError('version', response.header.status))
      })
      server.onError(seq, (error) => {
        watchdog.settle()
        reject(driverError('version', error))
      })
      server.write(requestBuffer(OPCODE.version, '', EMPTY, EMPTY, seq))
    })
  }

  #request (command: keyof typeof OPCODE, key: string, extras: Buffer, value: Buffer, cas?: CasToken): Promise<MemcachedResponse> {
    return new Promise<MemcachedResponse>((resolve, reject) => {
      const client = this.client
      client.incrSeq()
      const seq = client.seq
      const buffer = requestBuffer(OPCODE[command], key, extras, value, seq)
      if (cas !== undefined) cas.copy(buffer, 16)
      const watchdog = this.#watch(() => client.server(key), command)
      try {
        client.perform(key, buffer, seq, (error, response) => {
          watchdog.settle()
          if (error != null) reject(driverError(command, error))
          else resolve(response)
        }, NO_RETRY)
      } catch (error) {
        watchdog.settle()
        reject(driverError(command, error))
      }
    })
  }

  /**
   * When the backend owns the client: a request still unanswered after `watchdogMs` drops its
   * server's connection (memjs reconnects on the next request). memjs' own response timeout
   * restarts on every write, so under steady traffic a hung server would let requests pile up.
   * The check runs after the event loop has read the sockets: a process that was itself stalled
   * (CPU starvation) finds the answers that arrived meanwhile instead of dropping them.
   */
  #watch (server: () => MemcachedServer | null | undefined, command: string): { settle(): void } {
    if (this.#watchdogMs === 0) return NO_WATCHDOG
    let settled = false
    const timer = setTimeout(() => {
      setImmediate(() => {
        const target = settled ? undefined : server()
        if (target != null) dropConnection(target, new MemcachedHungError(`memcached did not answer ${command} within ${this.#watchdogMs} ms`))
      })
    }, this.#watchdogMs)
    timer.unref()
    return {
      settle () {
        settled = true
        clearTimeout(timer)
      }
    }
  }
}

const NO_WATCHDOG = { settle (): void {} }

const EMPTY = Buffer.alloc(0)

/** A binary-protocol request: the 24-byte header, then extras, key and value. */
function requestBuffer (opcode: number, key: string, extras: Buffer, value: Buffer, opaque: number): Buffer {
  const keyBytes = Buffer.from(key, 'utf8')
  const bodyLength = extras.length + keyBytes.length + value.length
  const buffer = Buffer.alloc(24 + bodyLength)
  buffer.writeUInt8(0x80, 0) // request magic
  buffer.writeUInt8(opcode, 1)
  buffer.writeUInt16BE(keyBytes.length, 2)
  buffer.writeUInt8(extras.length, 4)
  buffer.writeUInt32BE(bodyLength, 8)
  buffer.writeUInt32BE(opaque >>> 0, 12)
  extras.copy(buffer, 24)
  keyBytes.copy(buffer, 24 + extras.length)
  value.copy(buffer, 24 + extras.length + keyBytes.length)
  return buffer
}

/**
 * Closes a client the backend owns. memjs ends its sockets gracefully; one still connecting (the
 * server just restarted, say) would stay open until it connects and the server answers, holding
 * the process open, so each is destroyed as well.
 */
export function closeClient (client: MemcachedClient): void {
  client.close()
  for (const server of client.servers) (server as { _socket?: { destroy(): void } })._socket?.destroy()
}

/**
 * Fails every request waiting on `server` and closes its socket (memjs reconnects on the next
 * request). memjs keeps half-read answers in its buffer across connections; a fresh connection
 * must start with an empty one.
 */
function dropConnection (server: MemcachedServer, error: MemcachedHungError): void {
  server.error(error)
  ;(server as { responseBuffer?: Buffer }).responseBuffer = Buffer.alloc(0)
}

function statusError (command: string, status: number): MemcachedError {
  const text = STATUS_TEXT[status] ?? `status 0x${status.toString(16)}`
  return new MemcachedError(`${command}: ${text}`, { status })
}

/** What a socket error code means, said plainly in the message (the code stays in `cause`). */
const NETWORK_FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (is memcached running on that port?)',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'host name lookup failed (temporary DNS failure)',
  ECONNRESET: 'connection reset by the server',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed by the server'
}

/** memjs reports some failures as strings; every failure leaves here as a MemcachedError. */
function driverError (command: string, error: unknown): MemcachedError {
  if (error instanceof MemcachedHungError) return new MemcachedHungError(`${command}: ${error.message}`)
  if (error instanceof MemcachedError) return error
  const message = error instanceof Error ? error.message : String(error)
  const code = (error as { code?: unknown } | null)?.code
  const plainly = typeof code === 'string' ? NETWORK_FAILURES[code] : undefined
  return new MemcachedError(plainly === undefined ? `${command}: ${message}` : `${command}: ${plainly}: ${message}`, { cause: error })
}
