/**
 * RedisBackend: counters in Redis (or Valkey) through any supported client, spoken to through the
 * driver port (redis-driver.ts): ioredis (so the client `@fastify/redis` decorates) and iovalkey.
 *
 * Every decision is one round trip: the Lua twins of the strategies involved are composed into
 * one script, run by EVALSHA on the server's clock, which reads every key, steps every strategy
 * and writes all new states only when all limits allow (all-or-nothing). Keys are
 * `<namespace>:<uid>:{<identifier>}`, so the keys of one request share a Redis Cluster slot.
 * Specification: docs/backends/redis.md.
 */
import type { Decision } from '../../types/decision.js'
import { escalationOf, markOverride, untouchedDecision, type AppliedOverride } from '../decision.js'
import { BackendError, invalidOption } from '../errors.js'
import { untilAborted } from './backend-guard.js'
import { waitUntilReady } from './redis-connect-failure.js'
import { DRIVER_NAMES, resolveDriver, validateConnection, type OwnedDriver, type RedisConnection } from './redis-connection.js'
import type { RedisClient, RedisDriver, RedisDriverName } from './redis-driver.js'
import { RedisLock } from './redis-lock.js'
import {
  boundsArgument, EvaluationScripts, INCREMENT_WITH_TTL_LUA, OVERRIDE_RESULT_WIDTH, RELEASE_LOCK_LUA, RESULT_WIDTH, RedisScript,
  SHORT_RESULT_WIDTH, WRITE_OVERRIDES_LUA
} from './redis-scripts.js'
import { groupBySlot } from './redis-slot.js'
import {
  ThrottleBackend, assertKnownBackendOptions,
  type BackendHealth, type BackendLock, type EvaluateMode, type EvaluateOp, type ThrottleBackendOptions
} from './throttle-backend.js'

export type { RedisConnection } from './redis-connection.js'
export type { RedisClient, RedisDriverName } from './redis-driver.js'

/**
 * Options of RedisBackend, besides those every backend takes (ThrottleBackendOptions), whose
 * defaults here are `persistent: true` and `timeoutMs: 250`; `reset()` and `clearPrefix()` apply
 * `timeoutMs` to each SCAN/UNLINK batch rather than to the whole sweep.
 */
export interface RedisBackendOptions extends ThrottleBackendOptions {
  /**
   * How long `initialize()` waits for the connection to become ready (and the `connectTimeout`
   * of clients made from a URL).
   * @default 5000
   */
  connectTimeoutMs?: number
  /**
   * Extra options of the client library for the client made from a URL, merged over the
   * backend's fail-fast defaults (no offline queue, no retried commands, `socketTimeout`).
   * Ignored for clients you pass.
   * @default undefined
   */
  clientOptions?: Record<string, unknown>
  /**
   * The client library: which one makes the client from a URL, or which one a client (or a
   * factory's client) comes from when you would rather name it than let its shape tell.
   * @default 'ioredis' for a URL; recognised by its shape for a client
   */
  driver?: RedisDriverName
  /**
   * Whether `close()` closes the client.
   * @default true for a URL or a factory (the backend created the client), false for a client passed in
   */
  closeClient?: boolean
  /**
   * Independent Redis instances (URLs, clients or factories) on which `getLock()` takes its locks
   * with the Redlock algorithm (held once a majority granted it). Counters are not affected.
   * @default undefined (locks live on the backend's own connection)
   */
  redlock?: readonly RedisConnection[]
  /**
   * Flush the commands of concurrent decisions to Redis together, in one write per turn of the
   * event loop, instead of one write each: ioredis' and iovalkey's `enableAutoPipelining` on the
   * client made from a URL (`clientOptions.enableAutoPipelining` wins when given). node-redis
   * pipelines the commands of one tick by itself, whatever this says. A client you pass in keeps
   * its own setting. Every decision is still one script on the server, so exactness is unchanged;
   * what changes is the client's CPU per decision and the latency of a lone request (docs/backends/redis.md#pipelining).
   * @default false
   */
  autoPipelining?: boolean
  /**
   * Send the scripts of the decisions made in one turn of the event loop in one write: the
   * connection's socket is corked on the first and uncorked when the turn ends (setImmediate), so
   * the app host makes one system call and Redis one read for all of them instead of one each.
   * Applies to ioredis and iovalkey clients, made from a URL or passed in (standalone or
   * Sentinel; a Cluster client is left as it is); node-redis and Valkey GLIDE batch by
   * themselves. Every decision is still its own script and the order of the commands is kept,
   * so exactness and every reply are unchanged; a script waits at most for the rest of its turn
   * (docs/backends/redis.md#pipelining).
   * @default true
   */
  coalesceWrites?: boolean
  /**
   * Keys asked for per SCAN call by `reset()` and `clearPrefix()`; each batch is then UNLINKed.
   * @default 1000
   */
  scanCount?: number
}

/** Glob characters of Redis' MATCH, escaped so a namespace or prefix matches literally. */
function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\^]/g, '\\$&')
}

export class RedisBackend extends ThrottleBackend {
  /** A sweep of a large namespace may take longer than one deadline: each SCAN/UNLINK batch gets it instead. */
  static override perBatchDeadline = ['reset', 'clearPrefix'] as const

  readonly connectTimeoutMs: number
  readonly scanCount: number
  readonly autoPipelining: boolean
  readonly coalesceWrites: boolean
  readonly #connection: RedisConnection
  readonly #clientOptions: Record<string, unknown> | undefined
  readonly #driverName: RedisDriverName | undefined
  readonly #closeClient: boolean | undefined
  readonly #redlockConnections: readonly RedisConnection[] | undefined
  readonly #prefix: string
  readonly #scripts = new EvaluationScripts()
  readonly #incrementWithTtl = new RedisScript(INCREMENT_WITH_TTL_LUA)
  readonly #releaseLock = new RedisScript(RELEASE_LOCK_LUA)
  readonly #writeOverrides = new RedisScript(WRITE_OVERRIDES_LUA)
  #driver: RedisDriver | undefined
  #owned = false
  #redlock: OwnedDriver[] | undefined

  constructor (connection: RedisConnection, options: RedisBackendOptions = {}) {
    super(options, { persistent: true, timeoutMs: 250 })
    if (new.target === RedisBackend) {
      assertKnownBackendOptions('RedisBackend', options, ['autoPipelining', 'coalesceWrites', 'connectTimeoutMs', 'clientOptions', 'closeClient', 'driver', 'redlock', 'scanCount'])
    }
    const { autoPipelining = false, coalesceWrites = true, connectTimeoutMs = 5000, clientOptions, closeClient, driver, redlock, scanCount = 1000 } = options
    if (typeof autoPipelining !== 'boolean') invalidOption('autoPipelining', 'a boolean', autoPipelining)
    if (typeof coalesceWrites !== 'boolean') invalidOption('coalesceWrites', 'a boolean', coalesceWrites)
    if (driver !== undefined && !DRIVER_NAMES.includes(driver)) invalidOption('driver', `one of ${DRIVER_NAMES.map((n) => `'${n}'`).join(', ')}`, driver)
    validateConnection(connection, 'connection', driver)
    if (typeof connectTimeoutMs !== 'number' || !Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) {
      invalidOption('connectTimeoutMs', 'a positive number of milliseconds', connectTimeoutMs)
    }
    if (clientOptions !== undefined && (clientOptions === null || typeof clientOptions !== 'object')) {
      invalidOption('clientOptions', 'an object of client options', clientOptions)
    }
    if (closeClient !== undefined && typeof closeClient !== 'boolean') invalidOption('closeClient', 'a boolean', closeClient)
    if (redlock !== undefined) {
      if (!Array.isArray(redlock) || redlock.length === 0) invalidOption('redlock', 'a non-empty array of Redis connections', redlock)
      redlock.forEach((c, i) => { validateConnection(c, `redlock[${i}]`, driver) })
    }
    if (!Number.isSafeInteger(scanCount) || scanCount < 1) invalidOption('scanCount', 'a positive integer', scanCount)
    this.#connection = connection
    this.connectTimeoutMs = connectTimeoutMs
    this.#clientOptions = clientOptions
    this.#driverName = driver
    this.#closeClient = closeClient
    this.#redlockConnections = redlock
    this.scanCount = scanCount
    this.autoPipelining = autoPipelining
    this.coalesceWrites = coalesceWrites
    this.#prefix = `${this.namespace}:`
  }

  /** The client once initialized, as its library made it (yours when you passed one). */
  get client (): RedisClient | undefined {
    return this.#driver?.client
  }

  /** The client library the backend speaks to, once initialized. */
  get driver (): RedisDriverName | undefined {
    return this.#driver?.name
  }

  // ---- lifecycle ----

  protected override async onInitialize (signal?: AbortSignal): Promise<void> {
    const settings = { timeoutMs: this.timeoutMs, connectTimeoutMs: this.connectTimeoutMs, clientOptions: this.#clientOptions, closeClient: this.#closeClient, driver: this.#driverName, autoPipelining: this.autoPipelining, coalesceWrites: this.coalesceWrites }
    const opened: OwnedDriver[] = []
    try {
      const main = await resolveDriver(this.#connection, settings)
      opened.push(main)
      await untilAborted(waitUntilReady(main.driver, this.connectTimeoutMs), signal)
      let redlock: OwnedDriver[] | undefined
      if (this.#redlockConnections !== undefined) {
        redlock = []
        for (const connection of this.#redlockConnections) {
          const instance = await resolveDriver(connection, { ...settings, closeClient: undefined })
          opened.push(instance)
          redlock.push(instance)
        }
        // Redlock works with a majority, so a minority of instances down does not stop the app.
        const waits = await Promise.allSettled(redlock.map(async ({ driver }) => { await waitUntilReady(driver, this.connectTimeoutMs) }))
        const failed = waits.filter((w): w is PromiseRejectedResult => w.status === 'rejected')
        if (redlock.length - failed.length < Math.floor(redlock.length / 2) + 1) throw failed[0]!.reason
      }
      this.#driver = main.driver
      this.#owned = main.owned
      this.#redlock = redlock
    } catch (error) {
      // A client that cannot close cleanly must not hide why it could not connect.
      await Promise.all(opened.filter((o) => o.owned).map(async (o) => { await o.driver.close(this.timeoutMs || 1000).catch(() => {}) }))
      throw error
    }
  }

  protected override async onClose (): Promise<void> {
    const toClose = [...(this.#owned && this.#driver !== undefined ? [this.#driver] : []), ...(this.#redlock ?? []).filter((r) => r.owned).map((r) => r.driver)]
    this.#driver = undefined
    this.#redlock = undefined
    await Promise.all(toClose.map(async (driver) => { await driver.close(Math.max(this.timeoutMs, 1000)) }))
  }

  override async ready (): Promise<boolean> {
    return (await super.ready()) && this.#driver?.ready === true
  }

  /** PINGs Redis (every master of a cluster) and reports the latency. Never throws. */
  override async healthCheck (): Promise<BackendHealth> {
    return await this.probe(async () => {
      const driver = await this.#connected()
      await Promise.all(driver.primaries().map(async (node) => await node.ping()))
    })
  }

  // ---- the atomic entry point: one script per slot, one slot per request ----

  override evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    // The common case, one limit with a Lua twin on a ready connection, goes straight to its
    // script: no async layers in between (each costs a promise and a microtask turn).
    const ready = this.#readyDriver()
    if (ready !== undefined && ops.length === 1 && hasLuaTwin(ops[0]!) && (mode !== 'refund' || ops[0]!.strategy.refund !== undefined)) {
      return this.#evaluateOne(ready, ops[0]!, mode)
    }
    return this.#evaluate(ops, mode)
  }

  async #evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    if (ops.length === 0) return []
    const client = this.#readyDriver() ?? await this.#connected()
    // A custom strategy without a Lua twin cannot run in a script: decide it the generic way,
    // under a lock per key (several round trips, the app host's clock).
    if (!ops.every(hasLuaTwin)) return await super.evaluate(ops, mode)
    if (mode === 'refund' && ops.some((op) => op.strategy.refund === undefined)) {
      // Strategies without a refund are left as they are, like every backend does.
      const refundable = ops.filter((op) => op.strategy.refund !== undefined)
      const refunded = refundable.length === 0 ? [] : await this.#evaluateBySlot(client, refundable, mode)
      let next = 0
      return ops.map((op) => op.strategy.refund === undefined ? untouchedDecision(op.limit) : refunded[next++]!)
    }
    return await this.#evaluateBySlot(client, ops, mode)
  }

  async #evaluateBySlot (client: RedisDriver, ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    if (ops.length === 1 || !client.isCluster) return await this.#evaluateInOneScript(client, ops, mode)
    const groups = groupBySlot(ops.map((op) => this.#prefix + op.key))
    if (groups.length === 1) return await this.#evaluateInOneScript(client, ops, mode)
    return await this.#evaluateAcrossSlots(client, ops, groups, mode)
  }

  /**
   * Keys of different identifiers on a cluster live in different slots, which no single script
   * may touch: each slot gets its own script. Hits stay all-or-nothing: slots are charged one by
   * one, and when one rejects, those already charged are refunded and the rest only checked.
   */
  async #evaluateAcrossSlots (client: RedisDriver, ops: readonly EvaluateOp[], groups: number[][], mode: EvaluateMode): Promise<Decision[]> {
    const decisions: Decision[] = new Array(ops.length)
    const place = (group: number[], answers: Decision[]): void => { group.forEach((index, i) => { decisions[index] = answers[i]! }) }
    const opsOf = (group: number[]): EvaluateOp[] => group.map((index) => ops[index]!)
    if (mode !== 'hit') {
      const answers = await Promise.all(groups.map(async (group) => await this.#evaluateInOneScript(client, opsOf(group), mode)))
      groups.forEach((group, i) => { place(group, answers[i]!) })
      return decisions
    }
    const charged: number[][] = []
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g]!
      const answers = await this.#evaluateInOneScript(client, opsOf(group), 'hit')
      place(group, answers)
      if (answers.every((d) => d.allowed)) {
        charged.push(group)
        continue
      }
      const rest = groups.slice(g + 1)
      // Each charge is refunded against the time its slot's script made it.
      const chargesOf = (done: number[]): EvaluateOp[] => done.map((index) => ({ ...ops[index]!, chargedAt: decisions[index]!.decidedAt }))
      await Promise.all([
        // A refund that fails leaves the charge: the client is limited slightly early, never late.
        ...charged.map(async (done) => { await this.evaluate(chargesOf(done), 'refund').catch(() => {}) }),
        ...rest.map(async (other) => { place(other, await this.#evaluateInOneScript(client, opsOf(other), 'check')) })
      ])
      break
    }
    return decisions
  }

  async #evaluateInOneScript (client: RedisDriver, ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    if (ops.length === 1) return await this.#evaluateOne(client, ops[0]!, mode)
    if (mode !== 'refund') {
      const lookup = ops.find((op) => op.overrides !== undefined)?.overrides
      if (lookup !== undefined) return await this.#evaluateOverridden(client, ops, mode, lookup.key)
    }
    const keys: string[] = new Array(ops.length)
    const ids: number[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) {
      keys[i] = this.#prefix + ops[i]!.key
      ids[i] = this.#scripts.twinId(ops[i]!.strategy)
    }
    const { script, indexOf } = this.#scripts.scriptFor(ids)
    const args: Array<string | number> = [mode]
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      // No chargedAt: the script takes the charge as made now, on its own clock.
      args.push(indexOf.get(ids[i]!)!, op.limit, op.windowMs, op.cost, op.chargedAt ?? '', boundsArgument(op))
    }
    const reply = await script.run(client, keys, args) as number[]
    // The server's clock: the time every charge of this decision is refunded against.
    const decidedAt = Number(reply[ops.length * RESULT_WIDTH])
    const decisions: Decision[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) decisions[i] = decisionAt(reply, i * RESULT_WIDTH, ops[i]!.limit, decidedAt)
    return decisions
  }

  /** Several ops in one script that also reads the fleet's overrides of each (one HMGET). */
  async #evaluateOverridden (client: RedisDriver, ops: readonly EvaluateOp[], mode: EvaluateMode, fieldsKey: string): Promise<Decision[]> {
    const keys: string[] = new Array(ops.length + 1)
    const ids: number[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) {
      keys[i] = this.#prefix + ops[i]!.key
      ids[i] = this.#scripts.twinId(ops[i]!.strategy)
    }
    keys[ops.length] = this.#prefix + fieldsKey
    const { script, indexOf } = this.#scripts.overriddenScriptFor(ids)
    const args: Array<string | number> = [mode]
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      const lookup = op.overrides
      args.push(indexOf.get(ids[i]!)!, op.limit, op.windowMs, op.cost, op.chargedAt ?? '', boundsArgument(op))
      // An op of another throttle without overrides here asks for fields no override has.
      if (lookup === undefined) args.push('', '', '')
      else args.push(lookup.throttleField, lookup.identifierPrefix + op.key, lookup.fixedCost ? '1' : '')
    }
    const reply = await script.run(client, keys, args) as number[]
    const decidedAt = Number(reply[ops.length * OVERRIDE_RESULT_WIDTH])
    const decisions: Decision[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) {
      const at = i * OVERRIDE_RESULT_WIDTH
      decisions[i] = withOverride(decisionAt(reply, at, ops[i]!.limit, decidedAt), reply, at + RESULT_WIDTH)
    }
    return decisions
  }

  /** One op in its single-op script reading its overrides too: one HMGET more, in the same script. */
  #evaluateOneOverridden (client: RedisDriver, op: EvaluateOp, mode: EvaluateMode): Promise<Decision[]> {
    const lookup = op.overrides!
    const script = this.#scripts.singleOverriddenScript(this.#scripts.twinId(op.strategy))
    const args: Array<string | number> = [mode, 1, op.limit, op.windowMs, op.cost, op.chargedAt ?? '', boundsArgument(op),
      lookup.throttleField, lookup.identifierPrefix + op.key, lookup.fixedCost ? '1' : '']
    return script.run(client, [this.#prefix + op.key, this.#prefix + lookup.key], args)
      .then((reply) => [singleOpDecision(reply as number[], op.limit)])
  }

  /**
   * Whether decisions read the fleet's overrides inside their script: connected to one node (or
   * through Sentinel). On a Redis Cluster the overrides' hash lives in a slot of its own, which a
   * decision's script cannot touch, so decisions there leave overrides to the refresh cache.
   */
  override get overridesInScript (): boolean {
    const driver = this.#driver
    return driver !== undefined && !driver.isCluster
  }

  /**
   * Replaces the fleet's overrides atomically: the record (`null`: none) and the field hash the
   * decision scripts read (`fields`: field → value). Only where `overridesInScript`.
   */
  async writeOverrides (recordKey: string, record: string | null, fieldsKey: string, fields: ReadonlyMap<string, string>): Promise<void> {
    const client = await this.#connected()
    const args: string[] = [record ?? '']
    for (const [field, value] of fields) args.push(field, value)
    await this.#writeOverrides.run(client, [this.#prefix + recordKey, this.#prefix + fieldsKey], args)
  }

  /** One op in its single-op script: no arrays of twin ids or keys built for it. */
  #evaluateOne (client: RedisDriver, op: EvaluateOp, mode: EvaluateMode): Promise<Decision[]> {
    if (op.overrides !== undefined && mode !== 'refund') return this.#evaluateOneOverridden(client, op, mode)
    const script = this.#scripts.singleScript(this.#scripts.twinId(op.strategy))
    const args: Array<string | number> = [mode, 1, op.limit, op.windowMs, op.cost, op.chargedAt ?? '']
    // A calendar quota's period bounds; other strategies send none.
    const bounds = boundsArgument(op)
    if (bounds !== '') args.push(bounds)
    return script.run(client, [this.#prefix + op.key], args)
      .then((reply) => [singleOpDecision(reply as number[], op.limit)])
  }

  // ---- storage primitives (logical keys; the namespace is added here) ----

  override async get (key: string): Promise<string | null> {
    return await (await this.#connected()).get(this.#prefix + key)
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    await (await this.#connected()).set(this.#prefix + key, value, ttlMs === undefined ? undefined : { ttlMs: wholeTtl(ttlMs) })
  }

  override async delete (key: string): Promise<boolean> {
    return (await (await this.#connected()).del(this.#prefix + key)) > 0
  }

  override async increment (key: string, amount = 1): Promise<number> {
    return await (await this.#connected()).incrBy(this.#prefix + key, amount)
  }

  override async expire (key: string, ttlMs: number): Promise<boolean> {
    return await (await this.#connected()).pexpire(this.#prefix + key, wholeTtl(ttlMs))
  }

  /** INCRBY and, when the key has no TTL yet, PEXPIRE, atomically in one script. */
  override async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> {
    const client = await this.#connected()
    return Number(await this.#incrementWithTtl.run(client, [this.#prefix + key], [amount, wholeTtl(ttlMs)]))
  }

  /** MGET; on a cluster one MGET per slot, in parallel. */
  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return []
    const client = await this.#connected()
    const full = keys.map((key) => this.#prefix + key)
    if (!client.isCluster) return await client.mget(full)
    const values: Array<string | null> = new Array(keys.length)
    await Promise.all(groupBySlot(full).map(async (group) => {
      const answers = await client.mget(group.map((i) => full[i]!))
      group.forEach((index, i) => { values[index] = answers[i] ?? null })
    }))
    return values
  }

  /** One MULTI/EXEC of SETs (atomic); on a cluster one transaction per slot, in parallel. */
  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    if (entries.length === 0) return
    const client = await this.#connected()
    const full = entries.map(([key, value]) => [this.#prefix + key, value] as const)
    const groups = client.isCluster ? groupBySlot(full.map(([key]) => key)) : [full.map((_, i) => i)]
    const ttl = ttlMs === undefined ? undefined : wholeTtl(ttlMs)
    await Promise.all(groups.map(async (group) => { await client.setAll(group.map((index) => full[index]!), ttl) }))
  }

  /**
   * A lock at `<namespace>:<name>`: `SET NX PX` with a random token, released by compare-and-delete.
   * With the `redlock` option it is taken on those instances by majority.
   */
  override getLock (name: string, ttlMs: number): BackendLock {
    if (typeof name !== 'string' || name.length === 0) invalidOption('lock name', 'a non-empty string', name)
    if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) invalidOption('lock ttlMs', 'a positive number of milliseconds', ttlMs)
    return new RedisLock({
      clients: async () => {
        const client = await this.#connected()
        return this.#redlock?.map((r) => r.driver) ?? [client]
      },
      key: this.#prefix + name,
      ttlMs: wholeTtl(ttlMs),
      callTimeoutMs: this.timeoutMs,
      defaultWaitMs: this.timeoutMs > 0 ? this.timeoutMs : 1000,
      releaseScript: this.#releaseLock,
      wrapError: (operation, error) => this.toBackendError(operation, error)
    })
  }

  /** Deletes every key of this namespace (SCAN + UNLINK in batches, on every master), nothing else. */
  override async reset (): Promise<void> {
    await this.#deleteMatching(`${escapeGlob(this.#prefix)}*`)
  }

  /** Deletes every key of this namespace that starts with `prefix`; resolves how many. */
  override async clearPrefix (prefix: string): Promise<number> {
    if (typeof prefix !== 'string') invalidOption('prefix', 'a string', prefix)
    return await this.#deleteMatching(`${escapeGlob(this.#prefix + prefix)}*`)
  }

  async #deleteMatching (pattern: string): Promise<number> {
    const client = await this.#connected()
    let deleted = 0
    for (const node of client.primaries()) {
      let cursor = '0'
      do {
        const [next, keys] = await this.bounded(node.scan(cursor, pattern, this.scanCount))
        cursor = next
        if (keys.length === 0) continue
        if (!client.isCluster) {
          deleted += await this.bounded(node.unlink(keys))
          continue
        }
        // A cluster refuses multi-key commands across slots, even on one node.
        const counts = await this.bounded(Promise.all(groupBySlot(keys).map(async (group) => await node.unlink(group.map((i) => keys[i]!)))))
        deleted += counts.reduce((sum, count) => sum + count, 0)
      } while (cursor !== '0')
    }
    return deleted
  }

  // ---- connection state ----

  /** The driver when it is ready right now (the hot path: no await). */
  #readyDriver (): RedisDriver | undefined {
    const driver = this.#driver
    return driver !== undefined && driver.ready ? driver : undefined
  }

  /**
   * The client, initializing on first use. Fails at once, instead of queueing, while the
   * connection is down: the caller's `onError` answers now and nothing is replayed later.
   */
  async #connected (): Promise<RedisDriver> {
    if (this.#driver === undefined) await this.initialize()
    const driver = this.#driver
    if (driver === undefined) throw new BackendError(this.name, 'the backend is closed')
    if (!driver.ready) throw new BackendError(this.name, `not connected to Redis (connection ${driver.state})`)
    return driver
  }
}

function hasLuaTwin (op: EvaluateOp): boolean {
  const lua = op.strategy.lua
  return typeof lua === 'string' && lua.length > 0
}

/** The decision of one op from its `RESULT_WIDTH` numbers of the script's reply, starting at `at`. */
function decisionAt (reply: readonly number[], at: number, limit: number, decidedAt: number): Decision {
  const decision: Decision = {
    allowed: reply[at] === 1,
    limit,
    remaining: Number(reply[at + 1]),
    resetMs: Number(reply[at + 2]),
    retryAfterMs: Number(reply[at + 3]),
    decidedAt
  }
  const delayMs = Number(reply[at + 4])
  if (delayMs > 0) decision.delayMs = delayMs
  const offences = Number(reply[at + 5])
  if (offences >= 0) decision.escalation = escalationOf(offences, Number(reply[at + 6]))
  return decision
}

/**
 * The decision in a single-op script's reply, whichever of its three shapes: short (no delay or
 * escalation), long (RESULT_WIDTH numbers, then the server time), or long followed by what an
 * override read in the script did (the overrides-reading script only).
 */
function singleOpDecision (reply: readonly number[], limit: number): Decision {
  if (reply.length === SHORT_RESULT_WIDTH) return shortDecision(reply, limit)
  const decision = decisionAt(reply, 0, limit, Number(reply[RESULT_WIDTH]))
  return reply.length > RESULT_WIDTH + 1 ? withOverride(decision, reply, RESULT_WIDTH + 1) : decision
}

/** The decision of a short reply (allowed, remaining, reset, retry, server time). */
function shortDecision (reply: readonly number[], limit: number): Decision {
  return { allowed: reply[0] === 1, limit, remaining: Number(reply[1]), resetMs: Number(reply[2]), retryAfterMs: Number(reply[3]), decidedAt: Number(reply[4]) }
}

const OVERRIDE_KINDS: ReadonlyArray<AppliedOverride['kind'] | undefined> = [undefined, 'applied', 'disabled', 'shadow']

/** What an override read in the script did (kind, limit, windowMs, cost at `at`), marked on the decision. */
function withOverride (decision: Decision, reply: readonly number[], at: number): Decision {
  const kind = OVERRIDE_KINDS[Number(reply[at])]
  if (kind === undefined) return decision
  const limit = Number(reply[at + 1])
  if (kind !== 'disabled') decision.limit = limit
  return markOverride(decision, { kind, limit, windowMs: Number(reply[at + 2]), cost: Number(reply[at + 3]) })
}

/** Redis takes whole, positive milliseconds. */
function wholeTtl (ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs))
}
