/**
 * A custom backend whose store is an InMemoryBackend on a given clock, counting the calls that
 * reach the store: what the guard's in-process layers (block cache, leases) answer never does.
 */
import { InMemoryBackend, ManualClock, ThrottleBackend, type Decision, type ThrottleBackendOptions } from '../../lib/index.js'
import type { BackendLock, EvaluateMode, EvaluateOp } from '../../lib/backend.js'

export class CountingBackend extends ThrottleBackend {
  readonly store: InMemoryBackend
  /** Calls of evaluate that reached the store, any mode. */
  calls = 0
  /** Of those, hits. */
  hits = 0

  constructor (clock: ManualClock, options: ThrottleBackendOptions = {}) {
    super(options)
    this.store = new InMemoryBackend({ clock })
  }

  override async evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    this.calls++
    if (mode === 'hit') this.hits++
    return await this.store.evaluate(ops, mode)
  }

  override async get (key: string): Promise<string | null> { return await this.store.get(key) }
  override async set (key: string, value: string, ttlMs?: number): Promise<void> { await this.store.set(key, value, ttlMs) }
  override async delete (key: string): Promise<boolean> { return await this.store.delete(key) }
  override async increment (key: string, amount?: number): Promise<number> { return await this.store.increment(key, amount) }
  override async expire (key: string, ttlMs: number): Promise<boolean> { return await this.store.expire(key, ttlMs) }
  override getLock (name: string, ttlMs: number): BackendLock { return this.store.getLock(name, ttlMs) }
  override async reset (): Promise<void> { await this.store.reset() }
  override async clearPrefix (prefix: string): Promise<number> { return await this.store.clearPrefix(prefix) }
}
