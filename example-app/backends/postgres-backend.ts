/**
 * PostgresBackend: a custom backend built only on the public contract of fastify-traffik, keeping
 * counters in one PostgreSQL table. It shows what a backend author writes (docs/backends/custom.md)
 * and proves the contract on a real database: the conformance suite of `fastify-traffik/testing`
 * and the 4-process exactness test run against it.
 *
 * - Rows are `(namespace, key, value, expires_at)`; `expires_at` is in ms on the database's clock,
 *   so app hosts with skewed clocks agree. Expired rows read as absent and are swept on a timer.
 * - `evaluate` is exact under concurrency: one transaction takes a transaction-scoped advisory
 *   lock per key (in one global order, so two decisions never deadlock), reads the states, steps
 *   the strategies in JavaScript and writes the new states before it commits. Begin + lock + read
 *   go in one round trip and write + commit in another (a multi-statement query with escaped
 *   literals), so a key is locked for about one round trip.
 * - Locks for user code are rows too: taken by an upsert that only wins over an expired holder,
 *   released by a token-checked delete.
 */
import { createHash, randomBytes } from 'node:crypto'
import pg from 'pg'
import { ThrottleBackend, type Decision, type StepResult, type StrategyState, type ThrottleBackendOptions } from '../../lib/index.js'
import { type BackendLock, type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'

export interface PostgresBackendOptions extends ThrottleBackendOptions {
  /**
   * The table holding the counters; created by `initialize()` when missing.
   * @default 'traffik_entries'
   */
  table?: string
  /**
   * Connections of the pool the backend creates from a connection string.
   * @default 10
   */
  poolSize?: number
  /**
   * How often rows past their TTL are deleted, in ms; 0 never sweeps (expired rows still read as absent).
   * @default 60_000
   */
  sweepIntervalMs?: number
  /**
   * Whether counters survive the app (the plugin resets non-persistent backends before closing them).
   * @default true
   */
  persistent?: boolean
  /**
   * Deadline of every call in ms; past it the call fails with `TRAFFIK_ERR_BACKEND_TIMEOUT`.
   * @default 1000
   */
  timeoutMs?: number
}

/** The database's clock in whole ms; `statement_timestamp()` is fixed for one statement. */
const NOW_MS = '(floor(extract(epoch from statement_timestamp()) * 1000))::bigint'
/** Lock rows live beside data rows under a prefix no throttle key starts with. */
const LOCK_PREFIX = '\u0001lock:'

interface Row { key: string, value: string | null, now: string }

export class PostgresBackend extends ThrottleBackend {
  // Every pg failure (server errors and connection errors alike) is an Error: wrap them all.
  static override driverError = Error

  readonly table: string
  readonly #connection: string | pg.Pool
  readonly #poolSize: number
  readonly #sweepIntervalMs: number
  readonly #sql: ReturnType<typeof statements>
  #pool: pg.Pool | undefined
  #sweeper: NodeJS.Timeout | undefined

  /**
   * @param connection a connection string (`postgres://user@host:port/db`; the backend creates and
   *   closes its pool) or a `pg.Pool` of yours (used as it is, never closed)
   */
  constructor (connection: string | pg.Pool, options: PostgresBackendOptions = {}) {
    super(options, { persistent: true, timeoutMs: 1000 })
    const { table = 'traffik_entries', poolSize = 10, sweepIntervalMs = 60_000 } = options
    if (typeof connection !== 'string' && !(connection instanceof pg.Pool)) throw new TypeError('connection must be a connection string or a pg.Pool')
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(table)) throw new TypeError(`table must be a plain lower-case SQL identifier (got ${JSON.stringify(table)})`)
    if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new TypeError(`poolSize must be a positive integer (got ${String(poolSize)})`)
    if (!Number.isFinite(sweepIntervalMs) || sweepIntervalMs < 0) throw new TypeError(`sweepIntervalMs must be >= 0 (got ${String(sweepIntervalMs)})`)
    this.#connection = connection
    this.table = table
    this.#poolSize = poolSize
    this.#sweepIntervalMs = sweepIntervalMs
    this.#sql = statements(table)
  }

  override get name (): string {
    return 'PostgresBackend'
  }

  // ---- lifecycle ----

  protected override async onInitialize (): Promise<void> {
    const owned = typeof this.#connection === 'string'
    const pool = owned ? new pg.Pool({ connectionString: this.#connection as string, max: this.#poolSize }) : this.#connection as pg.Pool
    // An idle client that loses its server emits 'error'; the next query fails and onError decides.
    if (owned) pool.on('error', () => {})
    try {
      const client = await pool.connect()
      try {
        // Several processes may start at once: create the table under a lock.
        await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${lockId(`create:${this.table}`)}); ${this.#sql.createTable}; COMMIT`)
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {})
        throw error
      } finally {
        client.release()
      }
    } catch (error) {
      if (owned) await pool.end().catch(() => {})
      throw error
    }
    this.#pool = pool
    if (this.#sweepIntervalMs > 0) {
      this.#sweeper = setInterval(() => { this.sweep().catch(() => {}) }, this.#sweepIntervalMs)
      this.#sweeper.unref()
    }
  }

  protected override async onClose (): Promise<void> {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper)
    this.#sweeper = undefined
    const pool = this.#pool
    this.#pool = undefined
    if (pool !== undefined && typeof this.#connection === 'string') await pool.end()
  }

  /** Deletes the rows of this namespace whose TTL has passed; resolves how many. */
  async sweep (): Promise<number> {
    return (await this.#query(this.#sql.sweep, [this.namespace])).rowCount ?? 0
  }

  // ---- the atomic entry point ----

  override async evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    if (ops.length === 0) return []
    const keys = ops.map((op) => op.key)
    if (mode === 'check') {
      const { now, values } = await this.#read(keys)
      return ops.map((op) => stamped(step(op, values.get(op.key), now, mode)?.decision ?? untouched(op), now))
    }
    if (this.#pool === undefined) await this.initialize()
    const client = await this.#connected().connect()
    let broken: Error | undefined
    try {
      // One round trip: begin, lock every key in one global order (by lock id), then read.
      const ids = [...new Set(keys.map((key) => lockId(`${this.namespace}:${key}`)))].sort()
      const locks = ids.map((id) => `pg_advisory_xact_lock(${id})`).join(', ')
      // A decision that cannot get its locks within the deadline gives up inside the database too,
      // so a request answered by its timeout never consumes capacity afterwards.
      const lockTimeout = this.timeoutMs > 0 ? `SET LOCAL lock_timeout = '${Math.ceil(this.timeoutMs)}ms'; ` : ''
      const results = await client.query(`BEGIN; ${lockTimeout}SELECT ${locks}; ${this.#readSql(client, keys)}`) as unknown as pg.QueryResult[]
      const { now, values } = rowsOf(results.at(-1)!.rows as Row[])
      const results2 = ops.map((op) => step(op, values.get(op.key), now, mode))
      const commit = mode === 'refund' || results2.every((r) => r === null || r.decision.allowed)
      const writes = commit ? this.#writeSql(client, ops, results2, now) : ''
      await client.query(`${writes}COMMIT`)
      return results2.map((r, i) => stamped(r?.decision ?? untouched(ops[i]!), now))
    } catch (error) {
      broken = error as Error
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release(broken)
    }
  }

  /** `SELECT` of the live values of `keys`, one row per key, each with the database's time. */
  #readSql (client: pg.PoolClient, keys: readonly string[]): string {
    const list = [...new Set(keys)].map((key) => client.escapeLiteral(key)).join(', ')
    return `SELECT ${NOW_MS}::text AS now, k.key, e.value FROM unnest(ARRAY[${list}]::text[]) AS k(key) ` +
      `LEFT JOIN ${this.table} e ON e.namespace = ${client.escapeLiteral(this.namespace)} AND e.key = k.key ` +
      `AND (e.expires_at IS NULL OR e.expires_at > ${NOW_MS});`
  }

  /** The upserts and deletes that store the new states (the last op of a key wins). */
  #writeSql (client: pg.PoolClient, ops: readonly EvaluateOp[], results: ReadonlyArray<StepResult | null>, now: number): string {
    const latest = new Map<string, { state: string | null, expiresAt: number }>()
    results.forEach((result, i) => {
      if (result === null) return
      const op = ops[i]!
      latest.set(op.key, { state: result.state === null ? null : op.strategy.encode(result.state), expiresAt: now + Math.max(1, Math.ceil(result.ttlMs)) })
    })
    const namespace = client.escapeLiteral(this.namespace)
    const upserts: string[] = []
    const deletes: string[] = []
    for (const [key, { state, expiresAt }] of latest) {
      if (state === null) deletes.push(client.escapeLiteral(key))
      else upserts.push(`(${namespace}, ${client.escapeLiteral(key)}, ${client.escapeLiteral(state)}, ${expiresAt})`)
    }
    let sql = ''
    if (upserts.length > 0) {
      sql += `INSERT INTO ${this.table} (namespace, key, value, expires_at) VALUES ${upserts.join(', ')} ` +
        'ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at; '
    }
    if (deletes.length > 0) sql += `DELETE FROM ${this.table} WHERE namespace = ${namespace} AND key IN (${deletes.join(', ')}); `
    return sql
  }

  async #read (keys: readonly string[]): Promise<{ now: number, values: Map<string, string> }> {
    const result = await this.#query(this.#sql.read, [this.namespace, [...new Set(keys)]])
    return rowsOf(result.rows as Row[])
  }

  // ---- storage primitives (logical keys; the namespace is a column) ----

  override async get (key: string): Promise<string | null> {
    const result = await this.#query(this.#sql.get, [this.namespace, key])
    return (result.rows[0]?.value as string | undefined) ?? null
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    await this.#query(this.#sql.set, [this.namespace, key, value, ttlOf(ttlMs)])
  }

  override async delete (key: string): Promise<boolean> {
    const result = await this.#query(this.#sql.delete, [this.namespace, key])
    return result.rows[0]?.live === true
  }

  override async increment (key: string, amount = 1): Promise<number> {
    return await this.#add(key, amount, null)
  }

  /** Adds `amount` and gives a new (or expired) key its TTL, in one atomic upsert. */
  override async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> {
    return await this.#add(key, amount, ttlOf(ttlMs))
  }

  override async expire (key: string, ttlMs: number): Promise<boolean> {
    return ((await this.#query(this.#sql.expire, [this.namespace, key, ttlOf(ttlMs)])).rowCount ?? 0) > 0
  }

  /** One SELECT for every key. */
  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    if (keys.length === 0) return []
    const { values } = await this.#read(keys)
    return keys.map((key) => values.get(key) ?? null)
  }

  /** One INSERT for every entry: atomic. */
  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    if (entries.length === 0) return
    const latest = new Map(entries) // an upsert may not touch one row twice: the last value wins
    await this.#query(this.#sql.multiSet, [this.namespace, [...latest.keys()], [...latest.values()], ttlOf(ttlMs)])
  }

  override getLock (name: string, ttlMs: number): BackendLock {
    return new PostgresLock(this, LOCK_PREFIX + name, Math.max(1, Math.ceil(ttlMs)))
  }

  /** Takes a lock row if it is absent or expired. */
  async tryLock (key: string, token: string, ttlMs: number): Promise<boolean> {
    return ((await this.#query(this.#sql.tryLock, [this.namespace, key, token, ttlMs])).rowCount ?? 0) > 0
  }

  /** Deletes a lock row only if it still holds `token`. */
  async unlock (key: string, token: string): Promise<void> {
    await this.#query(this.#sql.unlock, [this.namespace, key, token])
  }

  override async reset (): Promise<void> {
    await this.#query(this.#sql.reset, [this.namespace])
  }

  override async clearPrefix (prefix: string): Promise<number> {
    return (await this.#query(this.#sql.clearPrefix, [this.namespace, prefix])).rowCount ?? 0
  }

  // ---- internals ----

  async #add (key: string, amount: number, ttlMs: number | null): Promise<number> {
    if (!Number.isSafeInteger(amount)) throw new RangeError(`amount must be an integer (got ${String(amount)})`)
    const result = await this.#query(this.#sql.add, [this.namespace, key, amount, ttlMs])
    return Number(result.rows[0]!.value)
  }

  #connected (): pg.Pool {
    if (this.#pool === undefined) throw new Error('PostgresBackend is not initialized (call initialize() first)')
    return this.#pool
  }

  async #query (sql: string, values: unknown[]): Promise<pg.QueryResult> {
    if (this.#pool === undefined) await this.initialize()
    return await this.#connected().query(sql, values)
  }
}

class PostgresLock implements BackendLock {
  readonly #token = randomBytes(12).toString('base64url')
  readonly #backend: PostgresBackend
  readonly #key: string
  readonly #ttlMs: number
  #held = false

  constructor (backend: PostgresBackend, key: string, ttlMs: number) {
    this.#backend = backend
    this.#key = key
    this.#ttlMs = ttlMs
  }

  async acquire (options: { blocking?: boolean, timeoutMs?: number } = {}): Promise<boolean> {
    const { blocking = true, timeoutMs = this.#backend.timeoutMs || 1000 } = options
    const deadline = Date.now() + timeoutMs
    let pause = 2
    for (;;) {
      if (await this.#backend.tryLock(this.#key, this.#token, this.#ttlMs)) {
        this.#held = true
        return true
      }
      const left = deadline - Date.now()
      if (!blocking || left <= 0) return false
      // Back off with jitter so waiters do not retry in lockstep; never block the event loop.
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, pause + Math.random() * pause)))
      pause = Math.min(pause * 2, 50)
    }
  }

  async release (): Promise<void> {
    if (!this.#held) return
    this.#held = false
    await this.#backend.unlock(this.#key, this.#token)
  }
}

/** The strategy's transition for one op, or null when a refund changes nothing. */
function step (op: EvaluateOp, raw: string | undefined, now: number, mode: EvaluateMode): StepResult | null {
  const state: StrategyState | undefined = raw === undefined ? undefined : op.strategy.decode(raw)
  // A refund gives back only what the charge made at chargedAt still holds; bounds are a calendar quota's periods.
  if (mode === 'refund') return op.strategy.refund?.(state, now, op.limit, op.windowMs, op.cost, op.chargedAt, op.bounds) ?? null
  return op.strategy.step(state, now, op.limit, op.windowMs, op.cost, op.bounds)
}

/** A decision with the database time it was made at: refunds of its charge pass it back as chargedAt. */
function stamped (decision: Decision, now: number): Decision {
  decision.decidedAt = now
  return decision
}

function untouched (op: EvaluateOp): Decision {
  return { allowed: true, limit: op.limit, remaining: op.limit, resetMs: 0, retryAfterMs: 0 }
}

function rowsOf (rows: readonly Row[]): { now: number, values: Map<string, string> } {
  const values = new Map<string, string>()
  for (const row of rows) if (row.value !== null) values.set(row.key, row.value)
  return { now: Number(rows[0]?.now ?? Date.now()), values }
}

/** A TTL in whole ms for SQL, or null for none. */
function ttlOf (ttlMs: number | undefined): number | null {
  if (ttlMs === undefined) return null
  if (typeof ttlMs !== 'number' || !(ttlMs > 0)) throw new RangeError(`ttlMs must be a positive number of ms (got ${String(ttlMs)})`)
  return Math.max(1, Math.ceil(ttlMs))
}

/** A signed 64-bit advisory lock id for a name, as a decimal literal. */
function lockId (name: string): string {
  return createHash('sha256').update(name).digest().readBigInt64BE(0).toString()
}

/** Every parameterized statement, built once per table. */
function statements (table: string) {
  const live = `(e.expires_at IS NULL OR e.expires_at > ${NOW_MS})`
  const expiry = `CASE WHEN $4::bigint IS NULL THEN NULL ELSE ${NOW_MS} + $4::bigint END`
  return {
    createTable: `CREATE TABLE IF NOT EXISTS ${table} (namespace text NOT NULL, key text NOT NULL, value text NOT NULL, expires_at bigint, PRIMARY KEY (namespace, key))`,
    read: `SELECT ${NOW_MS}::text AS now, k.key, e.value FROM unnest($2::text[]) AS k(key) LEFT JOIN ${table} e ON e.namespace = $1 AND e.key = k.key AND ${live}`,
    get: `SELECT e.value FROM ${table} e WHERE e.namespace = $1 AND e.key = $2 AND ${live}`,
    set: `INSERT INTO ${table} (namespace, key, value, expires_at) VALUES ($1, $2, $3, ${expiry}) ` +
      'ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at',
    multiSet: `INSERT INTO ${table} (namespace, key, value, expires_at) SELECT $1, k, v, ${expiry} FROM unnest($2::text[], $3::text[]) AS u(k, v) ` +
      'ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at',
    delete: `DELETE FROM ${table} e WHERE e.namespace = $1 AND e.key = $2 RETURNING ${live} AS live`,
    // A live key counts on and keeps its TTL; a missing or expired one starts at `amount` with the new TTL.
    add: `INSERT INTO ${table} AS e (namespace, key, value, expires_at) VALUES ($1, $2, $3::bigint::text, ${expiry}) ` +
      `ON CONFLICT (namespace, key) DO UPDATE SET value = CASE WHEN ${live} THEN (e.value::bigint + $3::bigint)::text ELSE EXCLUDED.value END, ` +
      `expires_at = CASE WHEN ${live} THEN e.expires_at ELSE EXCLUDED.expires_at END RETURNING e.value`,
    expire: `UPDATE ${table} e SET expires_at = ${NOW_MS} + $3::bigint WHERE e.namespace = $1 AND e.key = $2 AND ${live}`,
    tryLock: `INSERT INTO ${table} AS e (namespace, key, value, expires_at) VALUES ($1, $2, $3, ${NOW_MS} + $4::bigint) ` +
      `ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at WHERE NOT ${live}`,
    unlock: `DELETE FROM ${table} WHERE namespace = $1 AND key = $2 AND value = $3`,
    reset: `DELETE FROM ${table} WHERE namespace = $1`,
    clearPrefix: `DELETE FROM ${table} WHERE namespace = $1 AND starts_with(key, $2)`,
    sweep: `DELETE FROM ${table} WHERE namespace = $1 AND expires_at <= ${NOW_MS}`
  }
}
