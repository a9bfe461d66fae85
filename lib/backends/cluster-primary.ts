/**
 * ClusterBackend's primary side: the state of every worker's ClusterBackend lives here, one
 * InMemoryBackend per namespace, and each request a worker sends is answered from it. A decision
 * is the in-memory backend's synchronous evaluate (the strategies' own `step`), so it is atomic
 * across workers without locks: the primary handles one message at a time.
 *
 * Nothing survives the primary: when it exits, node:cluster's workers exit with it, and a new
 * primary starts from empty counters.
 */
import cluster, { type Worker } from 'node:cluster'
import type { Decision } from '../../types/decision.js'
import type { Strategy, StrategyCodec, StrategySpec } from '../../types/strategy.js'
import type { Clock } from '../clock.js'
import { invalidOption, UnsupportedError } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { InMemoryBackend } from './in-memory-backend.js'
import { envelope, isClusterMessage, PROTOCOL_VERSION, TAG, unbatch, type ClusterReply, type ClusterRequest, type EvaluateArgs } from './cluster-protocol.js'

export interface ClusterPrimaryOptions {
  /**
   * Most keys held per namespace (see InMemoryBackendOptions.maxKeys).
   * @default 1_000_000
   */
  maxKeys?: number
  /**
   * Eviction skips keys that are being limited (see InMemoryBackendOptions.protectLimited).
   * @default true
   */
  protectLimited?: boolean
  /**
   * How often expired keys are swept, in ms (see InMemoryBackendOptions.sweepIntervalMs).
   * @default 60_000
   */
  sweepIntervalMs?: number
  /**
   * The primary's time source: every decision of every worker is made at this clock's time.
   * @default systemClock (Date.now)
   */
  clock?: Clock
  /**
   * Strategies that are not built in (your own classes, or subclasses of built-in ones), which
   * workers name by their `name`: the primary runs these instances for them.
   * @default []
   */
  strategies?: readonly Strategy[]
  /**
   * The namespaces the primary serves: a list, or a predicate. Each namespace holds up to
   * `maxKeys` keys, so a fixed list bounds the primary's memory; a worker whose backend uses
   * another namespace gets `TRAFFIK_ERR_BACKEND` answers.
   * @default every namespace
   */
  namespaces?: readonly string[] | ((namespace: string) => boolean)
}

/** The primary side, as `ClusterBackend.attachPrimary()` returns it. */
export interface ClusterPrimary {
  /** The store of `namespace`, once a worker has used it (for inspection and tests). */
  store(namespace: string): InMemoryBackend | undefined
  /** Stops answering workers and drops every namespace's state. Idempotent. */
  detach(): Promise<void>
}

const KNOWN_OPTIONS = ['maxKeys', 'protectLimited', 'sweepIntervalMs', 'clock', 'strategies', 'namespaces']
/** Built strategies kept per spec; specs are few (one per configured strategy), this only bounds a misuse. */
const MAX_SPECS = 10_000

let attached: Primary | undefined

/** Installs the primary side in this process (see ClusterBackend.attachPrimary). */
export function attachPrimary (options: ClusterPrimaryOptions, codec: StrategyCodec): ClusterPrimary {
  if (options === null || typeof options !== 'object') invalidOption('attachPrimary options', 'an object', options)
  rejectUnknownKeys('ClusterBackend.attachPrimary', options, KNOWN_OPTIONS)
  if (!cluster.isPrimary) throw new UnsupportedError('ClusterBackend.attachPrimary() runs in the node:cluster primary; workers use new ClusterBackend()')
  if (attached !== undefined) throw new UnsupportedError('ClusterBackend.attachPrimary() was already called in this process; detach() the first one before attaching again')
  const primary = new Primary(options, codec)
  attached = primary
  return primary
}

class Primary implements ClusterPrimary {
  readonly #stores = new Map<string, InMemoryBackend>()
  readonly #strategies = new Map<string, Strategy>()
  readonly #known: ReadonlyMap<string, Strategy>
  readonly #serves: (namespace: string) => boolean
  readonly #storeOptions: { maxKeys?: number, protectLimited?: boolean, sweepIntervalMs?: number, clock?: Clock }
  readonly #codec: StrategyCodec
  /** Replies of this turn of the event loop, per worker, sent together when it ends. */
  readonly #outbox = new Map<Worker, ClusterReply[]>()
  readonly #flush = (): void => {
    for (const [worker, replies] of this.#outbox) send(worker, envelope('replies', replies))
    this.#outbox.clear()
  }

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    if (!isClusterMessage(message)) return
    for (const request of unbatch<ClusterRequest>(message, 'batch')) this.#answer(worker, request)
  }

  constructor (options: ClusterPrimaryOptions, codec: StrategyCodec) {
    const { strategies = [], namespaces, maxKeys, protectLimited, sweepIntervalMs, clock } = options
    if (!Array.isArray(strategies) || strategies.some((s: Strategy) => s === null || typeof s !== 'object' || typeof s.step !== 'function' || typeof s.name !== 'string')) {
      invalidOption('strategies', 'an array of strategy instances', strategies)
    }
    this.#known = new Map(strategies.map((strategy) => [strategy.name, strategy]))
    if (namespaces === undefined) this.#serves = () => true
    else if (typeof namespaces === 'function') this.#serves = namespaces
    else if (Array.isArray(namespaces) && namespaces.every((ns) => typeof ns === 'string')) this.#serves = (ns) => namespaces.includes(ns)
    else invalidOption('namespaces', 'an array of namespaces or a function (namespace) => boolean', namespaces)
    this.#storeOptions = defined({ maxKeys, protectLimited, sweepIntervalMs, clock })
    // Built once here, so bad store options fail at attach time rather than on a worker's first call.
    new InMemoryBackend(this.#storeOptions).close().catch(() => {})
    this.#codec = codec
    cluster.on('message', this.#onMessage)
  }

  store (namespace: string): InMemoryBackend | undefined {
    return this.#stores.get(namespace)
  }

  async detach (): Promise<void> {
    if (attached !== this) return
    attached = undefined
    cluster.off('message', this.#onMessage)
    const stores = [...this.#stores.values()]
    this.#stores.clear()
    this.#strategies.clear()
    await Promise.all(stores.map(async (store) => { await store.close() }))
  }

  #answer (worker: Worker, request: ClusterRequest): void {
    const id = request.id
    if (typeof id !== 'number') return
    let reply: ClusterReply
    try {
      if (request[TAG] !== PROTOCOL_VERSION) {
        throw new UnsupportedError(`the worker speaks ClusterBackend protocol ${String(request[TAG])}, this primary ${PROTOCOL_VERSION}: run one version of fastify-traffik in the primary and its workers`)
      }
      const value = this.#run(request)
      if (value instanceof Promise) {
        value.then((settled: unknown) => { this.#reply(worker, { [TAG]: PROTOCOL_VERSION, id, value: settled }) }, (error: unknown) => { this.#reply(worker, failure(id, error)) })
        return
      }
      reply = { [TAG]: PROTOCOL_VERSION, id, value }
    } catch (error) {
      reply = failure(id, error)
    }
    this.#reply(worker, reply)
  }

  /** Queues a reply for the end of this turn of the event loop. */
  #reply (worker: Worker, reply: ClusterReply): void {
    const replies = this.#outbox.get(worker)
    if (replies !== undefined) {
      replies.push(reply)
      return
    }
    if (this.#outbox.size === 0) setImmediate(this.#flush)
    this.#outbox.set(worker, [reply])
  }

  /** Runs one request on its namespace's store: synchronously where the store is (evaluate, get). */
  #run ({ ns, op, args }: ClusterRequest): unknown {
    if (op === 'hello') return { version: PROTOCOL_VERSION, pid: process.pid }
    const store = this.#storeOf(ns)
    const a = args as any[]
    switch (op) {
      case 'evaluate': {
        const [wire, mode] = args as EvaluateArgs
        return store.evaluate(wire.map(([spec, key, limit, windowMs, cost, chargedAt, bounds]) => ({
          strategy: this.#strategyOf(spec), key, limit, windowMs, cost, ...(chargedAt === null ? {} : { chargedAt }), ...(bounds === undefined ? {} : { bounds })
        })), mode) satisfies Decision[]
      }
      case 'get': return store.getSync(a[0])
      case 'set': return store.set(a[0], a[1], a[2] ?? undefined)
      case 'delete': return store.delete(a[0])
      case 'increment': return store.increment(a[0], a[1])
      case 'incrementWithTtl': return store.incrementWithTtl(a[0], a[1], a[2])
      case 'expire': return store.expire(a[0], a[1])
      case 'multiGet': return store.multiGet(a[0])
      case 'multiSet': return store.multiSet(a[0], a[1] ?? undefined)
      case 'tryLock': return store.tryLock(a[0], a[1], a[2])
      case 'unlock': return store.unlock(a[0], a[1])
      case 'reset': return store.clear()
      case 'clearPrefix': return store.clearPrefix(a[0])
      default: throw new UnsupportedError(`unknown ClusterBackend request '${String(op)}'`)
    }
  }

  #storeOf (namespace: string): InMemoryBackend {
    let store = this.#stores.get(namespace)
    if (store !== undefined) return store
    if (typeof namespace !== 'string' || !this.#serves(namespace)) {
      throw new UnsupportedError(`namespace '${String(namespace)}' is not served by this primary (attachPrimary's namespaces option)`)
    }
    store = new InMemoryBackend({ ...this.#storeOptions, namespace })
    store.initialize().catch(() => {})
    this.#stores.set(namespace, store)
    return store
  }

  #strategyOf (spec: string): Strategy {
    let strategy = this.#strategies.get(spec)
    if (strategy !== undefined) return strategy
    strategy = this.#codec.revive(JSON.parse(spec) as StrategySpec, this.#known)
    if (this.#strategies.size >= MAX_SPECS) this.#strategies.clear()
    this.#strategies.set(spec, strategy)
    return strategy
  }
}

function failure (id: number, error: unknown): ClusterReply {
  const code = (error as { code?: unknown })?.code
  const message = (error as Error)?.message ?? String(error)
  return { [TAG]: PROTOCOL_VERSION, id, error: typeof code === 'string' ? { code, message } : { message } }
}

/** A worker that is gone cannot be answered; its caller has its deadline. */
function send (worker: Worker, message: object): void {
  if (!worker.isConnected()) return
  worker.send(message as Parameters<Worker['send']>[0], undefined, ignore)
}

function ignore (): void {}

function defined<T extends object> (options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T
}
