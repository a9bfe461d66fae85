/**
 * ClusterBackend: exact limits shared by the workers of one host, without a server. The state
 * lives in the node:cluster primary (cluster-primary.ts: the in-memory backend, one per
 * namespace); each worker's backend asks it over the cluster's IPC channel (cluster-worker.ts),
 * one request per call and one per decision, the requests of one turn of the event loop sent in
 * one message. Strategies travel as specs (StrategySpec) and run
 * in the primary, so every strategy and every way to charge works as it does in memory.
 *
 * Like the network backends it has a deadline (`timeoutMs`, default 250 ms) after which the call
 * fails with `TRAFFIK_ERR_BACKEND_TIMEOUT` and the throttle's `onError` decides.
 * Specification: docs/backends/cluster.md.
 */
import cluster from 'node:cluster'
import type { Decision } from '../../types/decision.js'
import type { Strategy, StrategyCodec } from '../../types/strategy.js'
import { UnsupportedError } from '../errors.js'
import { attachPrimary, type ClusterPrimary, type ClusterPrimaryOptions } from './cluster-primary.js'
import type { ClusterOp, WireOp } from './cluster-protocol.js'
import { channel, ClusterPrimaryError } from './cluster-worker.js'
import { acquireWithBackoff } from './lock-backoff.js'
import { ThrottleBackend, assertKnownBackendOptions, type BackendLock, type EvaluateMode, type EvaluateOp, type ThrottleBackendOptions } from './throttle-backend.js'

export type { ClusterPrimary, ClusterPrimaryOptions } from './cluster-primary.js'
export { ClusterPrimaryError } from './cluster-worker.js'

/** Options of a worker's ClusterBackend: those of every backend; the state's options are the primary's. */
export interface ClusterBackendOptions extends ThrottleBackendOptions {}

/** How long `initialize()` waits for the primary's answer when `timeoutMs` is 0. */
const HELLO_WITHOUT_DEADLINE_MS = 1000

let codec: StrategyCodec | undefined

/** Gives ClusterBackend the strategies' codec (the entry point does, as backends know no strategy). */
export function useStrategyCodec (strategies: StrategyCodec): void {
  codec = strategies
}

function strategyCodec (): StrategyCodec {
  if (codec === undefined) throw new UnsupportedError("ClusterBackend has no strategy codec: import it from 'fastify-traffik'")
  return codec
}

export class ClusterBackend extends ThrottleBackend {
  static override driverError = ClusterPrimaryError

  /**
   * Installs the primary side in the node:cluster primary: call it there once, before forking
   * the workers. Returns a handle whose `detach()` stops it.
   */
  static attachPrimary (options: ClusterPrimaryOptions = {}): ClusterPrimary {
    return attachPrimary(options, strategyCodec())
  }

  /** Each strategy's spec as JSON, computed once per strategy. */
  readonly #specs = new WeakMap<Strategy, string>()
  #listening = false

  constructor (options: ClusterBackendOptions = {}) {
    super(options, { persistent: true, timeoutMs: 250 })
    if (new.target === ClusterBackend) assertKnownBackendOptions('ClusterBackend', options, [])
    if (!cluster.isWorker) {
      throw new UnsupportedError(`ClusterBackend runs in node:cluster workers (this process is ${cluster.isPrimary ? 'not one' : 'unknown to node:cluster'}): ` +
        'call ClusterBackend.attachPrimary() in the primary and create the backend in each worker; a single process uses InMemoryBackend')
    }
  }

  protected override async onInitialize (): Promise<void> {
    this.#listen()
    const waitMs = this.timeoutMs > 0 ? this.timeoutMs : HELLO_WITHOUT_DEADLINE_MS
    let timer: NodeJS.Timeout | undefined
    const silence = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new ClusterPrimaryError(`no node:cluster primary answered within ${waitMs} ms: call ClusterBackend.attachPrimary() in the primary before forking workers ` +
          "(under PM2's cluster mode the primary is PM2 itself, which cannot hold the counters: see the ClusterBackend guide)"))
      }, waitMs)
    })
    try {
      await Promise.race([this.#ask('hello', []), silence])
    } catch (error) {
      this.#unlisten()
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  protected override async onClose (): Promise<void> {
    this.#unlisten()
  }

  override evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    const wire: WireOp[] = new Array(ops.length)
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!
      wire[i] = [this.#specOf(op.strategy), op.key, op.limit, op.windowMs, op.cost, op.chargedAt ?? null]
      if (op.bounds !== undefined) wire[i]!.push(op.bounds)
    }
    return this.#ask('evaluate', [wire, mode]) as Promise<Decision[]>
  }

  override async get (key: string): Promise<string | null> {
    return await this.#ask('get', [key]) as string | null
  }

  override async set (key: string, value: string, ttlMs?: number): Promise<void> {
    await this.#ask('set', [key, value, ttlMs ?? null])
  }

  override async delete (key: string): Promise<boolean> {
    return await this.#ask('delete', [key]) as boolean
  }

  override async increment (key: string, amount = 1): Promise<number> {
    return await this.#ask('increment', [key, amount]) as number
  }

  override async incrementWithTtl (key: string, amount: number, ttlMs: number): Promise<number> {
    return await this.#ask('incrementWithTtl', [key, amount, ttlMs]) as number
  }

  override async expire (key: string, ttlMs: number): Promise<boolean> {
    return await this.#ask('expire', [key, ttlMs]) as boolean
  }

  override async multiGet (keys: readonly string[]): Promise<Array<string | null>> {
    return await this.#ask('multiGet', [keys]) as Array<string | null>
  }

  override async multiSet (entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void> {
    await this.#ask('multiSet', [entries, ttlMs ?? null])
  }

  override async reset (): Promise<void> {
    await this.#ask('reset', [])
  }

  override async clearPrefix (prefix: string): Promise<number> {
    return await this.#ask('clearPrefix', [prefix]) as number
  }

  override getLock (name: string, ttlMs: number): BackendLock {
    return new ClusterLock(this, name, ttlMs)
  }

  /** One lock request to the primary, bounded by the deadline (locks are not guarded methods). */
  async lockRequest (op: 'tryLock' | 'unlock', args: readonly unknown[]): Promise<unknown> {
    this.assertOpen()
    try {
      return await this.bounded(this.#ask(op, args))
    } catch (error) {
      throw this.toBackendError(op, error)
    }
  }

  #ask (op: ClusterOp, args: readonly unknown[]): Promise<unknown> {
    // A backend used before initialize() still hears its answers (close() stops listening).
    if (!this.#listening) this.#listen()
    return channel.request(this.namespace, op, args, this.timeoutMs)
  }

  #specOf (strategy: Strategy): string {
    let spec = this.#specs.get(strategy)
    if (spec === undefined) {
      spec = JSON.stringify(strategyCodec().describe(strategy))
      this.#specs.set(strategy, spec)
    }
    return spec
  }

  #listen (): void {
    if (this.#listening) return
    this.#listening = true
    channel.open()
  }

  #unlisten (): void {
    if (!this.#listening) return
    this.#listening = false
    channel.close()
  }
}

class ClusterLock implements BackendLock {
  readonly #token = `${process.pid}:${Math.random().toString(36).slice(2)}`
  readonly #backend: ClusterBackend
  readonly #name: string
  readonly #ttlMs: number

  constructor (backend: ClusterBackend, name: string, ttlMs: number) {
    this.#backend = backend
    this.#name = name
    this.#ttlMs = ttlMs
  }

  async acquire (options: { blocking?: boolean, timeoutMs?: number } = {}): Promise<boolean> {
    const { blocking = true, timeoutMs = this.#backend.timeoutMs > 0 ? this.#backend.timeoutMs : 1000 } = options
    return await acquireWithBackoff(async () => await this.#backend.lockRequest('tryLock', [this.#name, this.#token, this.#ttlMs]) as boolean, { blocking, timeoutMs })
  }

  async release (): Promise<void> {
    await this.#backend.lockRequest('unlock', [this.#name, this.#token])
  }
}
