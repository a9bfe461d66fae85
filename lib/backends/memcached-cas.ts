/**
 * Stateful strategies (no counter plan) on memcached, exact under concurrency through
 * compare-and-swap: read the state with its CAS token, run the strategy's pure `step`, write the
 * new state only if the item is unchanged (`add` when it was absent), and start over otherwise.
 * A rejection writes nothing, so it costs one round trip; an admission costs two.
 *
 * Decisions on one key in one process are batched: while a read-step-write is in flight, later
 * requests for that key wait and then go together: one read, `step` applied to each in arrival
 * order, one CAS write of the final state. Conflicts then only happen between processes, and a
 * burst on one hot key costs about two round trips per batch instead of a CAS storm.
 */
import type { Decision } from '../../types/decision.js'
import type { Strategy, StrategyState } from '../../types/strategy.js'
import { BackendTimeoutError } from '../errors.js'
import { expirationOf } from './memcached-keys.js'
import { MemcachedError, type CasToken, type CasValue, type MemcachedProtocol } from './memcached-protocol.js'
import type { EvaluateOp } from './throttle-backend.js'

/** Attempts before giving up when no deadline bounds the loop (`timeoutMs: 0`). */
const MAX_ATTEMPTS = 1000

interface Waiting {
  readonly op: EvaluateOp
  readonly deadline: number
  resolve(decision: Decision): void
  reject(error: unknown): void
}

/** A stateful op and the storage key of its state. */
export interface StatefulItem {
  readonly op: EvaluateOp
  readonly key: string
}

type WriteOutcome = { written: false } | { written: true, cas: CasToken | null }

export class CasExecutor {
  readonly #timeoutMs: number
  readonly #backendName: string
  /** Per storage key: requests waiting for the batch in flight. A key is present while a batch runs. */
  readonly #queues = new Map<string, Waiting[]>()

  constructor (timeoutMs: number, backendName: string) {
    this.#timeoutMs = timeoutMs
    this.#backendName = backendName
  }

  /** Decides and charges one op (mode 'hit'), batched with concurrent requests for the same key. */
  hit (protocol: MemcachedProtocol, item: StatefulItem): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      const deadline = this.#timeoutMs > 0 ? performance.now() + this.#timeoutMs : Infinity
      const waiting = this.#queues.get(item.key)
      const entry: Waiting = { op: item.op, deadline, resolve, reject }
      if (waiting !== undefined) {
        waiting.push(entry)
        return
      }
      this.#queues.set(item.key, [entry])
      void this.#drain(protocol, item.key)
    })
  }

  /** Decides without writing (mode 'check'): one read. */
  async check (protocol: MemcachedProtocol, item: StatefulItem, now: number): Promise<Decision> {
    const stored = await protocol.get(item.key)
    const { strategy, limit, windowMs, cost } = item.op
    return strategy.step(decodeWith(strategy, stored), now, limit, windowMs, cost).decision
  }

  /** Gives `cost` back (mode 'refund') in a CAS loop; strategies without `refund` are left unchanged. */
  async refund (protocol: MemcachedProtocol, item: StatefulItem): Promise<Decision> {
    const { strategy, limit, windowMs, cost } = item.op
    if (strategy.refund === undefined) return { allowed: true, limit, remaining: limit, resetMs: 0, retryAfterMs: 0 }
    const started = performance.now()
    for (let attempt = 0; ; attempt++) {
      const stored = await protocol.get(item.key)
      const now = Date.now()
      const result = strategy.refund(decodeWith(strategy, stored), now, limit, windowMs, cost)
      const raw = result.state === null ? null : strategy.encode(result.state)
      if ((await writeState(protocol, item.key, stored, raw, result.ttlMs, now)).written) return result.decision
      await this.#beforeRetry(started, attempt)
    }
  }

  /**
   * Several stateful ops, all-or-nothing (mode 'hit' with several limits). Reads every state,
   * steps every op; when `proceed` is false (another limit already rejected) or any op rejects,
   * nothing is written. Otherwise the states are written in key order with CAS; if one write
   * loses a race, the ones already written are undone and everything is decided again.
   */
  async hitAll (protocol: MemcachedProtocol, items: readonly StatefulItem[], proceed: boolean): Promise<{ decisions: Decision[], committed: boolean }> {
    if (items.length === 0) return { decisions: [], committed: true }
    const started = performance.now()
    for (let attempt = 0; ; attempt++) {
      const keys = [...new Set(items.map((i) => i.key))]
      const reads = await Promise.all(keys.map(async (key) => await protocol.get(key)))
      const stored = new Map(keys.map((key, i) => [key, reads[i]!]))
      const now = Date.now()
      // Ops on the same key apply one after the other, as they would one request at a time.
      const next = new Map<string, string | null>(keys.map((key) => [key, stored.get(key)?.value ?? null]))
      const ttls = new Map<string, number>()
      const decisions = items.map(({ op, key }) => {
        const raw = next.get(key) ?? null
        const state = raw === null ? undefined : op.strategy.decode(raw)
        const result = op.strategy.step(state, now, op.limit, op.windowMs, op.cost)
        if (result.decision.allowed) {
          next.set(key, result.state === null ? null : op.strategy.encode(result.state))
          ttls.set(key, result.ttlMs)
        }
        return result.decision
      })
      if (!proceed || decisions.some((d) => !d.allowed)) return { decisions, committed: false }

      const written: Array<{ key: string, previous: string | null, cas: CasToken | null, ttlMs: number }> = []
      let lost = false
      for (const key of [...ttls.keys()].sort()) {
        const outcome = await writeState(protocol, key, stored.get(key)!, next.get(key) ?? null, ttls.get(key)!, now)
        if (!outcome.written) {
          lost = true
          break
        }
        written.push({ key, previous: stored.get(key)?.value ?? null, cas: outcome.cas, ttlMs: ttls.get(key)! })
      }
      if (!lost) return { decisions, committed: true }
      await this.#undo(protocol, written, items)
      await this.#beforeRetry(started, attempt)
    }
  }

  /** Runs batches for `key` until no request waits. Never rejects: failures reject the batch's requests. */
  async #drain (protocol: MemcachedProtocol, key: string): Promise<void> {
    for (;;) {
      const batch = this.#queues.get(key)!
      if (batch.length === 0) {
        this.#queues.delete(key)
        return
      }
      this.#queues.set(key, [])
      try {
        await this.#runBatch(protocol, key, batch)
      } catch (error) {
        for (const entry of batch) entry.reject(error)
      }
    }
  }

  async #runBatch (protocol: MemcachedProtocol, key: string, batch: Waiting[]): Promise<void> {
    const started = performance.now()
    let entries = batch
    for (let attempt = 0; ; attempt++) {
      entries = this.#withoutExpired(entries)
      if (entries.length === 0) return
      const stored = await protocol.get(key)
      const now = Date.now()
      // The state each request sees: decoded once, then handed from one step to the next
      // (re-encoded only when two requests use different strategy instances).
      let holder: Strategy | undefined
      let state: StrategyState | null | undefined
      let ttlMs = 0
      let changed = false
      const decisions: Decision[] = []
      for (const { op } of entries) {
        const strategy = op.strategy
        if (holder !== strategy) {
          const raw = holder === undefined ? stored?.value ?? null : state == null ? null : holder.encode(state)
          state = raw === null ? undefined : strategy.decode(raw)
          holder = strategy
        }
        const result = strategy.step(state ?? undefined, now, op.limit, op.windowMs, op.cost)
        if (result.decision.allowed) {
          state = result.state
          ttlMs = result.ttlMs
          changed = true
        }
        decisions.push(result.decision)
      }
      const raw = state == null ? null : holder!.encode(state)
      if (!changed || (await writeState(protocol, key, stored, raw, ttlMs, now)).written) {
        entries.forEach((entry, i) => { entry.resolve(decisions[i]!) })
        return
      }
      await this.#beforeRetry(started, attempt)
    }
  }

  /** Requests whose deadline passed were already answered by `onError`: they must not be charged now. */
  #withoutExpired (entries: Waiting[]): Waiting[] {
    const now = performance.now()
    if (entries.every((e) => e.deadline > now)) return entries
    const live: Waiting[] = []
    for (const entry of entries) {
      if (entry.deadline > now) live.push(entry)
      else entry.reject(new BackendTimeoutError(this.#backendName, this.#timeoutMs))
    }
    return live
  }

  /**
   * Undoes writes of an all-or-nothing decision that lost a race on a later key: restores the
   * previous value if the item is still the one written (CAS), else refunds the cost through the
   * strategy. A failed undo leaves the charge in place (limited early, never late).
   */
  async #undo (protocol: MemcachedProtocol, written: ReadonlyArray<{ key: string, previous: string | null, cas: CasToken | null, ttlMs: number }>, items: readonly StatefulItem[]): Promise<void> {
    await Promise.all(written.map(async ({ key, previous, cas, ttlMs }) => {
      try {
        let restored: boolean
        if (cas === null) {
          // The decision deleted the state: put the previous one back unless someone wrote meanwhile.
          restored = previous === null || (await protocol.store('add', key, previous, expirationOf(ttlMs))) !== null
        } else if (previous === null) {
          restored = await protocol.delete(key, cas)
        } else {
          restored = (await protocol.store('set', key, previous, expirationOf(ttlMs), cas)) !== null
        }
        if (restored) return
        for (const item of items) if (item.key === key) await this.refund(protocol, item)
      } catch {
        // Left charged: see above.
      }
    }))
  }

  async #beforeRetry (started: number, attempt: number): Promise<void> {
    const elapsed = performance.now() - started
    if ((this.#timeoutMs > 0 && elapsed >= this.#timeoutMs) || attempt >= MAX_ATTEMPTS) {
      throw new MemcachedError(`gave up after ${attempt + 1} conflicting CAS writes in ${Math.round(elapsed)} ms`)
    }
    // Other processes won the race; a short random pause keeps them from colliding again in step.
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(attempt, 5)))
  }
}

function decodeWith (strategy: Strategy, stored: CasValue | null): ReturnType<Strategy['decode']> {
  return stored === null ? undefined : strategy.decode(stored.value)
}

/**
 * Writes `raw` (null deletes) over what was read: CAS `set`/`delete` when the item existed,
 * `add` when it did not. `written: false` means another writer got there first.
 */
async function writeState (protocol: MemcachedProtocol, key: string, stored: CasValue | null, raw: string | null, ttlMs: number, now: number): Promise<WriteOutcome> {
  if (stored === null) {
    if (raw === null) return { written: true, cas: null }
    const cas = await protocol.store('add', key, raw, expirationOf(ttlMs, now))
    return cas === null ? { written: false } : { written: true, cas }
  }
  if (raw === null) return (await protocol.delete(key, stored.cas)) ? { written: true, cas: null } : { written: false }
  const cas = await protocol.store('set', key, raw, expirationOf(ttlMs, now), stored.cas)
  return cas === null ? { written: false } : { written: true, cas }
}
