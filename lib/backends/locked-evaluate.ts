/**
 * The generic `evaluate` every backend inherits: a lock per key, read, step, write. Exact as long
 * as the backend's locks are; backends with an atomic operation of their own override `evaluate`.
 */
import type { BackendLock, EvaluateMode, EvaluateOp } from '../../types/backend.js'
import type { Decision } from '../../types/decision.js'
import type { StrategyState } from '../../types/strategy.js'
import { BackendError } from '../errors.js'
import { stepAll, writes } from './step-all.js'

/** The primitives the locked evaluate uses. */
export interface LockedStore {
  readonly name: string
  readonly timeoutMs: number
  getLock(name: string, ttlMs: number): BackendLock
  multiGet(keys: readonly string[]): Promise<Array<string | null>>
  set(key: string, value: string, ttlMs?: number): Promise<void>
  delete(key: string): Promise<boolean>
}

/**
 * Decides `ops` under a lock per key (taken in sorted order, so two decisions never deadlock;
 * none for `'check'`): reads the states, steps the strategies at `now()` read under the locks,
 * and writes the new states when the call commits.
 */
export async function evaluateUnderLocks (store: LockedStore, ops: readonly EvaluateOp[], mode: EvaluateMode, now: () => number): Promise<Decision[]> {
  const keys = ops.map((op) => op.key)
  const locks: BackendLock[] = []
  if (mode !== 'check') {
    // The TTL only frees a key whose holder crashed; it must outlast any live critical section,
    // also on a starved event loop, or two holders would overlap and over-admit.
    const lockTtl = Math.max(10_000, store.timeoutMs * 4)
    for (const key of [...new Set(keys)].sort()) {
      const lock = store.getLock(`${key}:lock`, lockTtl)
      const acquired = await lock.acquire({ blocking: true, timeoutMs: store.timeoutMs || 1000 })
      if (!acquired) {
        await releaseAll(locks)
        throw new BackendError(store.name, `could not take the lock of ${key}`)
      }
      locks.push(lock)
    }
  }
  try {
    // Read the time under the locks, so decisions on one key see it move forward.
    const at = now()
    const raws = await store.multiGet(keys)
    const states = ops.map((op, i): StrategyState | undefined => {
      const raw = raws[i]
      return raw == null ? undefined : op.strategy.decode(raw)
    })
    const { results, decisions, commit } = stepAll(ops, states, at, mode)
    for (let i = 0; i < ops.length; i++) {
      const result = results[i]
      if (result == null || !writes(mode, commit, result)) continue
      if (result.state === null) await store.delete(keys[i]!)
      else await store.set(keys[i]!, ops[i]!.strategy.encode(result.state), result.ttlMs)
    }
    return decisions
  } finally {
    await releaseAll(locks)
  }
}

async function releaseAll (locks: BackendLock[]): Promise<void> {
  await Promise.all(locks.map(async (lock) => { await lock.release().catch(() => {}) }))
  locks.length = 0
}
