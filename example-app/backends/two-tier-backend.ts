/**
 * TwoTierBackend: a composite backend built only on the public contract. L2 is the shared backend
 * that holds the counters (Redis, Memcached, PostgreSQL, ...); L1 is an InMemoryBackend in this
 * process that remembers rejections until they expire. A client that keeps hammering after a 429
 * is answered from L1, without a round trip to L2, until its `retry-after` has passed: a flood
 * from one client costs the shared store one call per wait instead of one per request.
 *
 * What L1 answers is what L2 would answer, with one exception, by design: a refund made by
 * another process (a reservation given back there) frees capacity L1 does not hear about, so this
 * process may keep rejecting that client until the remembered wait ends (never admitting too much).
 * Refunds through this backend clear L1 at once.
 */
import { InMemoryBackend, ThrottleBackend, type BackendHealth, type Decision, type ThrottleBackendOptions } from '../../lib/index.js'
import { type BackendLock, type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'

export interface TwoTierBackendOptions extends Pick<ThrottleBackendOptions, 'persistent'> {
  /**
   * The in-process tier remembering rejections.
   * @default new InMemoryBackend({ maxKeys: 100_000 })
   */
  l1?: InMemoryBackend
  /**
   * Whether `close()` also closes L2 (and L1).
   * @default true
   */
  closeTiers?: boolean
}

/** What L1 stores per key: the rejection and the request it was for. */
interface RememberedRejection {
  /** When L2 answered, in ms since the epoch. */
  at: number
  cost: number
  limit: number
  windowMs: number
  strategy: string
  decision: Decision
}

export class TwoTierBackend extends ThrottleBackend {
  readonly l1: InMemoryBackend
  readonly l2: ThrottleBackend
  readonly #closeTiers: boolean

  constructor (l2: ThrottleBackend, options: TwoTierBackendOptions = {}) {
    // L2 already bounds its calls by its own deadline and wraps its errors; the namespace is L2's.
    super({ namespace: l2.namespace, timeoutMs: 0, persistent: options.persistent ?? l2.persistent })
    if (!(l2 instanceof ThrottleBackend)) throw new TypeError('l2 must be a ThrottleBackend')
    this.l2 = l2
    this.l1 = options.l1 ?? new InMemoryBackend({ namespace: `${l2.namespace}-l1`, maxKeys: 100_000 })
    this.#closeTiers = options.closeTiers ?? true
  }

  override get name (): string {
    return `TwoTierBackend(${this.l2.name})`
  }

  protected override async onInitialize (): Promise<void> {
    await Promise.all([this.l1.initialize(), this.l2.initialize()])
  }

  protected override async onClose (): Promise<void> {
    if (!this.#closeTiers) return
    await Promise.all([this.l1.close(), this.l2.close()])
  }

  override async ready (): Promise<boolean> {
    return (await super.ready()) && await this.l2.ready()
  }

  override async healthCheck (): Promise<BackendHealth> {
    if (this.closed) return { healthy: false, latencyMs: 0, error: new Error(`${this.name} is closed`) }
    return await this.l2.healthCheck()
  }

  override async evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    if (mode === 'refund') {
      // Capacity comes back: whatever L1 remembers about these keys is out of date.
      await Promise.all(ops.map(async (op) => await this.l1.delete(op.key)))
      return await this.l2.evaluate(ops, mode)
    }
    if (ops.length === 1) {
      const remembered = this.#remembered(ops[0]!)
      if (remembered !== undefined) return [remembered]
    }
    const decisions = await this.l2.evaluate(ops, mode)
    if (mode === 'hit') decisions.forEach((decision, i) => { this.#remember(ops[i]!, decision) })
    return decisions
  }

  /** A rejection L1 still holds for this request (same rate and strategy, at least the same cost). */
  #remembered (op: EvaluateOp): Decision | undefined {
    if (op.cost === 0) return undefined
    const raw = this.l1.getSync(op.key)
    if (raw === null) return undefined
    const entry = JSON.parse(raw) as RememberedRejection
    const elapsed = Date.now() - entry.at
    const left = entry.decision.retryAfterMs - elapsed
    if (left <= 0 || op.cost < entry.cost || op.limit !== entry.limit || op.windowMs !== entry.windowMs || op.strategy.name !== entry.strategy) return undefined
    return { ...entry.decision, retryAfterMs: left, resetMs: Math.max(left, entry.decision.resetMs - elapsed) }
  }

  #remember (op: EvaluateOp, decision: Decision): void {
    // -1 means "never with this cost": nothing to wait for, so nothing worth remembering.
    if (decision.allowed || decision.retryAfterMs <= 0) return
    const entry: RememberedRejection = {
      at: Date.now(), cost: op.cost, limit: op.limit, windowMs: op.windowMs, strategy: op.strategy.name, decision
    }
    // Best effort: a rejection L1 failed to remember is asked of L2 again next time.
    this.l1.set(op.key, JSON.stringify(entry), decision.retryAfterMs).catch(() => {})
  }

  // ---- storage primitives: the counters live in L2 ----

  override async get (key: string): Promise<string | null> { return await this.l2.get(key) }
  override async set (key: string, value: string, ttlMs?: number): Promise<void> { await this.l2.set(key, value, ttlMs) }
  override async delete (key: string): Promise<boolean> {
    await this.l1.delete(key)
    return await this.l2.delete(key)
  }

  override async increment (key: string, amount = 1): Promise<number> { return await this.l2.increment(key, amount) }
  override async decrement (key: string, amount = 1): Promise<number> { return await this.l2.decrement(key, amount) }
  override async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> { return await this.l2.incrementWithTtl(key, amount, ttlMs) }
  override async expire (key: string, ttlMs: number): Promise<boolean> { return await this.l2.expire(key, ttlMs) }
  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> { return await this.l2.multiGet(keys) }
  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> { await this.l2.multiSet(entries, ttlMs) }
  override getLock (name: string, ttlMs: number): BackendLock { return this.l2.getLock(name, ttlMs) }

  override async reset (): Promise<void> {
    await this.l1.reset()
    await this.l2.reset()
  }

  override async clearPrefix (prefix: string): Promise<number> {
    await this.l1.clearPrefix(prefix)
    return await this.l2.clearPrefix(prefix)
  }
}
