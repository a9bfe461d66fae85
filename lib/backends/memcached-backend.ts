/**
 * MemcachedBackend: counters in memcached through memjs, shared by every app process.
 *
 * - Counter strategies (FixedWindow, SlidingWindowCounter) take the fast path: one atomic
 *   incr-with-initial-and-expiration per decision (memcached-counters.ts).
 * - Stateful strategies are exact through compare-and-swap on the binary protocol's CAS field
 *   (memcached-cas.ts); a rejection costs one round trip, an admission two.
 * - `reset()` and `clearPrefix()` switch generations instead of enumerating keys
 *   (memcached-generation.ts); keys and TTLs follow memcached's rules (memcached-keys.ts).
 *
 * memcached has no clock a client can read, so decisions use this host's clock.
 * Specification: docs/backends/memcached.md.
 */
import type { Decision } from '../../types/decision.js'
import { BackendTimeoutError, invalidOption } from '../errors.js'
import { CasExecutor, type StatefulItem } from './memcached-cas.js'
import { chargeCounter, checkCounter, refundCounter, takeBack, type CounterCharge, type CounterContext } from './memcached-counters.js'
import { GenerationCache, generationOf, type Generation } from './memcached-generation.js'
import { expirationOf, safeKey } from './memcached-keys.js'
import { MemcachedLock } from './memcached-lock.js'
import { closeClient, MemcachedError, MemcachedHungError, MemcachedProtocol, type MemcachedClient } from './memcached-protocol.js'
import { withinDeadline } from './backend-guard.js'
import {
  ThrottleBackend, assertKnownBackendOptions,
  type BackendHealth, type BackendLock, type EvaluateMode, type EvaluateOp, type ThrottleBackendOptions
} from './throttle-backend.js'

export type { MemcachedClient } from './memcached-protocol.js'

/** memjs options (`Client.create(servers, options)`) for the client the backend creates from a server list. */
export interface MemjsClientOptions {
  /**
   * Seconds memjs waits for an answer before it drops the connection (it reconnects on the next request).
   * @default max(1, 4 × timeoutMs / 1000)
   */
  timeout?: number
  /**
   * Seconds memjs waits for a connection.
   * @default 2 × timeout
   */
  conntimeout?: number
  /**
   * TCP keep-alive on the connections.
   * @default true
   */
  keepAlive?: boolean
  /**
   * Seconds of idleness before the first keep-alive probe.
   * @default 30
   */
  keepAliveDelay?: number
  /**
   * Send a failing server's keys to the next server for `failoverTime` seconds. Off by default:
   * moving keys splits their counters between two servers.
   * @default false
   */
  failover?: boolean
  /**
   * Seconds a failed server is skipped when `failover` is on.
   * @default 60
   */
  failoverTime?: number
  /** SASL user name. @default undefined (no authentication) */
  username?: string
  /** SASL password. @default undefined */
  password?: string
  /**
   * Where memjs logs. Failures reach the throttle as BackendError anyway, so the default is silent.
   * @default a logger that drops everything
   */
  logger?: { log(...args: unknown[]): void }
  /** Any other memjs option, passed through. */
  [option: string]: unknown
}

/**
 * Options of MemcachedBackend, besides those every backend takes (ThrottleBackendOptions), whose
 * defaults here are `persistent: true` and `timeoutMs: 250`; `namespace` must be printable ASCII
 * without spaces (memcached keys).
 */
export interface MemcachedBackendOptions extends ThrottleBackendOptions {
  /**
   * memjs options for the client created from a server list (not allowed with a client of your own).
   * @default {} (see MemjsClientOptions for each default)
   */
  clientOptions?: MemjsClientOptions
  /**
   * How long a process uses its cached generation (see `reset()`) before re-reading it in the
   * background, in ms: another process's `reset()` or `clearPrefix()` reaches this one within
   * this time. 0 reads it on every decision (one more round trip each).
   * @default 1000
   */
  generationRefreshMs?: number
}

const SILENT_LOGGER = { log (): void {} }

/** A late charge is refunded in the background, retrying CAS conflicts for up to this many deadlines. */
const LATE_REFUND_BUDGET_FACTOR = 8

export class MemcachedBackend extends ThrottleBackend {
  static override driverError = MemcachedError

  /** The server list the client was created from, or undefined for a client passed in. */
  readonly servers: string | undefined
  readonly generationRefreshMs: number
  readonly #clientOptions: MemjsClientOptions | undefined
  readonly #ownsClient: boolean
  #client: MemcachedClient | undefined
  #protocol: MemcachedProtocol | undefined
  #connecting: Promise<MemcachedProtocol> | undefined
  readonly #generation: GenerationCache
  readonly #cas: CasExecutor

  /**
   * @param servers `'host:port,host:port'` (memjs spreads keys over the servers, and the backend
   *   creates and closes the client), or an existing memjs `Client` (used as it is, never closed)
   */
  constructor (servers: string | MemcachedClient, options: MemcachedBackendOptions = {}) {
    super(options, { persistent: true, timeoutMs: 250 })
    if (!/^[\x21-\x7e]+$/.test(this.namespace)) invalidOption('namespace', 'printable ASCII without spaces (memcached keys)', this.namespace)
    if (new.target === MemcachedBackend) assertKnownBackendOptions('MemcachedBackend', options, ['clientOptions', 'generationRefreshMs'])
    const { clientOptions, generationRefreshMs = 1000 } = options
    if (typeof servers === 'string') {
      const entries = servers.split(',')
      if (servers.trim() === '' || entries.some((entry) => !/^([^@\s]+@)?[^\s:@,]+(:\d{1,5})?$/.test(entry.trim()))) {
        invalidOption('servers', "a list like 'host:port,host:port'", servers)
      }
      this.servers = entries.map((entry) => entry.trim()).join(',')
      this.#ownsClient = true
    } else if (isMemcachedClient(servers)) {
      if (clientOptions !== undefined) invalidOption('clientOptions', 'no client options with a client of your own (configure that client instead)', clientOptions)
      this.#client = servers
      this.#ownsClient = false
    } else {
      invalidOption('servers', "a server list like 'host:port,host:port' or a memjs Client", servers)
    }
    if (clientOptions !== undefined && (clientOptions === null || typeof clientOptions !== 'object')) {
      invalidOption('clientOptions', 'an object of memjs options', clientOptions)
    }
    if (typeof generationRefreshMs !== 'number' || !Number.isFinite(generationRefreshMs) || generationRefreshMs < 0) {
      invalidOption('generationRefreshMs', 'a finite number of milliseconds >= 0', generationRefreshMs)
    }
    this.#clientOptions = clientOptions
    this.generationRefreshMs = generationRefreshMs
    this.#generation = new GenerationCache(() => this.#connect(), `${this.namespace}:generation`, generationRefreshMs)
    this.#cas = new CasExecutor(this.timeoutMs, this.name, () => this.now())
  }

  /** The memjs client, once created (immediately for a client passed in). */
  get client (): MemcachedClient | undefined {
    return this.#client
  }

  /**
   * Creates the client and reads the namespace's generation: a round trip that proves memcached
   * answers. Like Redis, an unreachable memcached fails initialization with its cause (refused,
   * unknown host, no answer), and the backend's `startup` decides whether the app starts anyway.
   * Bounded by `max(1000, 4 × timeoutMs)` ms; a refusal or an unknown host is reported at once.
   */
  protected override async onInitialize (): Promise<void> {
    const protocol = await this.#connect()
    const boundMs = Math.max(1000, 4 * this.timeoutMs)
    try {
      await withinDeadline(this.#generation.load(), boundMs, this.name)
    } catch (error) {
      // A failed start leaves no socket behind; the next attempt creates the client afresh.
      await this.onClose()
      const where = this.servers ?? protocol.client.servers.map((server) => `${server.host}:${server.port}`).join(',')
      throw new MemcachedError(`could not connect to memcached at ${where}: ${(error as Error).message}`, { cause: error })
    }
  }

  protected override async onClose (): Promise<void> {
    if (this.#ownsClient && this.#client !== undefined) {
      closeClient(this.#client)
      // Forget the closed client so a later initialize() (the next app around this backend)
      // connects afresh instead of timing out on it.
      this.#client = undefined
      this.#protocol = undefined
      this.#connecting = undefined
    }
  }

  // ---- the atomic entry point ----

  /**
   * Decides `ops` (see EvaluateMode). The guard applies `timeoutMs` and gives back a hit that
   * lands after its deadline (see refundLateCharge).
   */
  override evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    return this.#decide(ops, mode)
  }

  /** Late charges are refunded with a longer budget for CAS conflicts: nobody waits on them. */
  protected override async refundLateCharge (ops: readonly EvaluateOp[]): Promise<void> {
    await this.#decide(ops, 'refund', LATE_REFUND_BUDGET_FACTOR * this.timeoutMs)
  }

  /** A server dropped for not answering (see the protocol's watchdog) is reported as a timeout. */
  protected override toBackendError (operation: string, error: unknown): Error {
    if (error instanceof MemcachedHungError) return new BackendTimeoutError(this.name, this.timeoutMs, { cause: error })
    return super.toBackendError(operation, error)
  }

  /** `budgetMs` bounds CAS retries of refunds (the deadline by default; longer for late-charge refunds, which nobody waits for). */
  async #decide (ops: readonly EvaluateOp[], mode: EvaluateMode, budgetMs = this.timeoutMs): Promise<Decision[]> {
    const protocol = await this.#connect()
    const generation = await this.#generation.current()
    const context: CounterContext = { protocol, storageKey: (key) => this.#storageKey(generation, key) }
    const now = this.now()
    for (const op of ops) {
      if (op.strategy.counter !== undefined && !generation.windows.includes(op.windowMs)) this.#generation.registerWindow(op.windowMs)
    }
    if (ops.length === 1) return [await this.#evaluateOne(context, ops[0]!, mode, now, budgetMs)]
    if (mode !== 'hit') return await Promise.all(ops.map(async (op) => await this.#evaluateOne(context, op, mode, now, budgetMs)))
    return await this.#hitAll(context, ops, now)
  }

  async #evaluateOne (context: CounterContext, op: EvaluateOp, mode: EvaluateMode, now: number, budgetMs = this.timeoutMs): Promise<Decision> {
    if (op.strategy.counter !== undefined) {
      if (mode === 'check') return await checkCounter(context, op, now)
      if (mode === 'refund') return await refundCounter(context, op, now)
      const charge = await chargeCounter(context, op, now)
      if (!charge.decision.allowed) await takeBack(context, [charge])
      return charge.decision
    }
    const item: StatefulItem = { op, key: context.storageKey(op.key) }
    if (mode === 'check') return await this.#cas.check(context.protocol, item, now)
    if (mode === 'refund') return await this.#cas.refund(context.protocol, item, budgetMs)
    return await this.#cas.hit(context.protocol, item)
  }

  /** Several limits, all-or-nothing: counters are charged first and taken back if anything rejects. */
  async #hitAll (context: CounterContext, ops: readonly EvaluateOp[], now: number): Promise<Decision[]> {
    const counterIndexes: number[] = []
    const statefulIndexes: number[] = []
    ops.forEach((op, i) => { (op.strategy.counter !== undefined ? counterIndexes : statefulIndexes).push(i) })

    const settled = await Promise.allSettled(counterIndexes.map(async (i) => await chargeCounter(context, ops[i]!, now)))
    const charges = settled.filter((s): s is PromiseFulfilledResult<CounterCharge> => s.status === 'fulfilled').map((s) => s.value)
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failure !== undefined) {
      await takeBack(context, charges)
      throw failure.reason
    }
    const countersAllowed = charges.every((c) => c.decision.allowed)
    const items = statefulIndexes.map((i) => ({ op: ops[i]!, key: context.storageKey(ops[i]!.key) }))
    let stateful: { decisions: Decision[], committed: boolean }
    try {
      stateful = await this.#cas.hitAll(context.protocol, items, countersAllowed)
    } catch (error) {
      await takeBack(context, charges)
      throw error
    }
    if (!countersAllowed || !stateful.committed) await takeBack(context, charges)

    const decisions: Decision[] = new Array(ops.length)
    counterIndexes.forEach((opIndex, i) => { decisions[opIndex] = charges[i]!.decision })
    statefulIndexes.forEach((opIndex, i) => { decisions[opIndex] = stateful.decisions[i]! })
    return decisions
  }

  // ---- storage primitives (logical keys; namespace, generation and hashing added here) ----

  override async get (key: string): Promise<string | null> {
    const { protocol, storageKey } = await this.#target(key)
    return (await protocol.get(storageKey))?.value ?? null
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    if (typeof value !== 'string') invalidOption('value', 'a string', value)
    const expiration = ttlMs === undefined ? 0 : expirationOf(checkedTtl(ttlMs))
    const { protocol, storageKey } = await this.#target(key)
    await protocol.store('set', storageKey, value, expiration)
  }

  /**
   * Deletes `key`, and the window counters counter strategies keep beside it (`<key>:<windowId>`
   * of the current and previous window, for every window length used in this namespace, read
   * afresh from the generation item), so `throttle.reset(request)` clears one client for every
   * strategy. Resolves whether anything existed.
   */
  override async delete (key: string): Promise<boolean> {
    if (typeof key !== 'string' || key.length === 0) invalidOption('key', 'a non-empty string', key)
    const protocol = await this.#connect()
    // A fresh read: window lengths another process recorded a moment ago count too.
    const generation = await this.#generation.load()
    const now = this.now()
    const keys = [key]
    for (const windowMs of generation.windows) {
      const windowId = Math.floor(now / windowMs)
      keys.push(`${key}:${windowId}`, `${key}:${windowId - 1}`)
    }
    const deleted = await Promise.all(keys.map(async (k) => await protocol.delete(this.#storageKey(generation, k))))
    return deleted.some(Boolean)
  }

  /** Adds `amount` (a missing key starts at 0). Negative amounts go through decr, which stops at 0. */
  override async increment (key: string, amount = 1): Promise<number> {
    return await this.#add(key, checkedAmount(amount), 0)
  }

  /** Subtracts `amount`; memcached counters never go below 0. */
  override async decrement (key: string, amount = 1): Promise<number> {
    return await this.#add(key, -checkedAmount(amount), 0)
  }

  /** Adds `amount` and, when the key is new, gives it `ttlMs`: one atomic incr with initial value and expiration. */
  override async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> {
    return await this.#add(key, checkedAmount(amount), expirationOf(checkedTtl(ttlMs)))
  }

  override async expire (key: string, ttlMs: number): Promise<boolean> {
    const expiration = expirationOf(checkedTtl(ttlMs))
    const { protocol, storageKey } = await this.#target(key)
    return await protocol.touch(storageKey, expiration)
  }

  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    const protocol = await this.#connect()
    const generation = await this.#generation.current()
    return await Promise.all(keys.map(async (key) => (await protocol.get(this.#storageKey(generation, key)))?.value ?? null))
  }

  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    const expiration = ttlMs === undefined ? 0 : expirationOf(checkedTtl(ttlMs))
    const protocol = await this.#connect()
    const generation = await this.#generation.current()
    await Promise.all(entries.map(async ([key, value]) => {
      if (typeof value !== 'string') invalidOption('value', 'a string', value)
      await protocol.store('set', this.#storageKey(generation, key), value, expiration)
    }))
  }

  override getLock (name: string, ttlMs: number): BackendLock {
    checkedTtl(ttlMs)
    return new MemcachedLock(async () => {
      const { protocol, storageKey } = await this.#target(name)
      return { protocol, key: storageKey }
    }, ttlMs, this.timeoutMs, name)
  }

  /**
   * Clears the namespace in O(1): writes a fresh generation, so every key written before is never
   * read again (each expires on its own TTL). This process switches at once; other processes
   * within `generationRefreshMs`.
   */
  override async reset (): Promise<void> {
    await this.#generation.reset()
  }

  /**
   * Clears every key starting with `prefix` (what `throttle.reset()` calls) by giving that prefix
   * a generation of its own. Resolves -1: memcached cannot count the keys. At most 1000 distinct
   * prefixes per namespace until the next `reset()`.
   */
  override async clearPrefix (prefix: string): Promise<number> {
    if (typeof prefix !== 'string' || prefix.length === 0) invalidOption('prefix', 'a non-empty string', prefix)
    await this.#generation.clearPrefix(prefix)
    return -1
  }

  /** Asks every server for its version; healthy only if all answer within `timeoutMs`. */
  override async healthCheck (): Promise<BackendHealth> {
    return await this.probe(async () => {
      const protocol = await this.#connect()
      await Promise.all(protocol.client.servers.map(async (server) => await protocol.version(server)))
    })
  }

  // ---- internals ----

  /** The storage key: `<namespace>:<generation>:<logical key>`, hashed when memcached would refuse it. */
  #storageKey (generation: Generation, logicalKey: string): string {
    return safeKey(this.namespace, `${this.namespace}:${generationOf(generation, logicalKey)}:${logicalKey}`)
  }

  async #target (logicalKey: string): Promise<{ protocol: MemcachedProtocol, storageKey: string }> {
    if (typeof logicalKey !== 'string' || logicalKey.length === 0) invalidOption('key', 'a non-empty string', logicalKey)
    const protocol = await this.#connect()
    const generation = await this.#generation.current()
    return { protocol, storageKey: this.#storageKey(generation, logicalKey) }
  }

  async #add (key: string, amount: number, expiration: number): Promise<number> {
    const { protocol, storageKey } = await this.#target(key)
    const value = amount >= 0
      ? await protocol.counter('increment', storageKey, amount, amount, expiration)
      : await protocol.counter('decrement', storageKey, -amount, 0, expiration)
    return value!
  }

  #connect (): MemcachedProtocol | Promise<MemcachedProtocol> {
    if (this.#protocol !== undefined) return this.#protocol
    this.#connecting ??= this.#createClient().then((client) => {
      this.#client = client
      // For clients of our own, a request unanswered for twice the deadline drops the connection:
      // late enough that a slow answer still arrives (and a late charge is given back), soon
      // enough that nothing piles up behind a hung server.
      this.#protocol = new MemcachedProtocol(client, this.#ownsClient ? 2 * this.timeoutMs : 0)
      return this.#protocol
    }, (error: unknown) => {
      this.#connecting = undefined
      throw error
    })
    return this.#connecting
  }

  async #createClient (): Promise<MemcachedClient> {
    if (this.#client !== undefined) return this.#client
    let memjs: { Client?: MemjsClientClass, default?: { Client?: MemjsClientClass } }
    try {
      memjs = await import('memjs') as unknown as typeof memjs
    } catch (error) {
      throw new MemcachedError("MemcachedBackend needs the 'memjs' package: npm install memjs", { cause: error })
    }
    const Client = memjs.Client ?? memjs.default?.Client
    if (Client === undefined) throw new MemcachedError("the 'memjs' package has no Client export")
    // memjs' timeout drops the whole connection (every request on it fails, answered or not), and
    // it also fires when this process, not memcached, was stalled: keep it well behind the deadline.
    // Hung servers are caught by the protocol's watchdog at 2 × timeoutMs.
    const timeout = Math.max(1000, 4 * this.timeoutMs) / 1000
    return Client.create(this.servers!, { timeout, keepAlive: true, logger: SILENT_LOGGER, ...this.#clientOptions, retries: 1 })
  }
}

interface MemjsClientClass {
  create(servers: string, options: Record<string, unknown>): MemcachedClient
}

function isMemcachedClient (value: unknown): value is MemcachedClient {
  return value !== null && typeof value === 'object' &&
    typeof (value as { perform?: unknown }).perform === 'function' &&
    typeof (value as { incrSeq?: unknown }).incrSeq === 'function' &&
    Array.isArray((value as { servers?: unknown }).servers)
}

function checkedAmount (amount: number): number {
  if (!Number.isSafeInteger(amount)) invalidOption('amount', 'an integer', amount)
  return amount
}

function checkedTtl (ttlMs: number): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || !(ttlMs > 0)) invalidOption('ttlMs', 'a positive number of milliseconds', ttlMs)
  return ttlMs
}
