/**
 * Stateful strategies (no counter plan) on memcached, exact under concurrency through
 * compare-and-swap: read the state with its CAS token, run the strategy's pure `step`, write the
 * new state only if the item is unchanged (`add` when it was absent), and start over otherwise.
 * A rejection writes nothing, so it costs one round trip; an admission costs two (and so does a
 * rejection whose strategy keeps its state: an escalation policy recording an offence). Decisions are
 * stamped with the time they were stepped at (this host's clock), which refunds of their charges
 * pass back as `chargedAt`.
 *
 * Decisions in one process on the same keys are batched: while a read-step-write is in flight,
 * later requests for those keys wait and then go together: one read per key, `step` applied to
 * each request in arrival order (each sees the one before), one CAS write per changed key.
 * Conflicts then only happen between processes, and a burst on one hot key costs about two round
 * trips per batch instead of a CAS storm. Several limits of one request (several keys) are
 * batched the same way, all-or-nothing per request.
 */
import type { Decision } from '../../types/decision.js'
import { untouchedDecision } from '../decision.js'
import type { Strategy, StrategyState } from '../../types/strategy.js'
import { sleep } from '../clock.js'
import { BackendTimeoutError } from '../errors.js'
import { expirationOf } from './memcached-keys.js'
import { MemcachedError, type CasToken, type CasValue, type MemcachedProtocol } from './memcached-protocol.js'
import type { EvaluateOp } from './throttle-backend.js'

/** Attempts before giving up when no deadline bounds the loop (`timeoutMs: 0`). */
const MAX_ATTEMPTS = 1000

/** A stateful op and the storage key of its state. */
export interface StatefulItem {
  readonly op: EvaluateOp
  readonly key: string
}

/** The decisions of one request's ops, and whether its new states were written. */
export interface BatchOutcome {
  decisions: Decision[]
  committed: boolean
}

interface Waiting {
  readonly items: readonly StatefulItem[]
  /** False when another limit of the request already rejected: decide, write nothing. */
  readonly proceed: boolean
  readonly deadline: number
  resolve(outcome: BatchOutcome): void
  reject(error: unknown): void
}

/** One key's state while a batch is decided: decoded once, handed from step to step. */
interface Slot {
  readonly stored: CasValue | null
  /** The strategy `state` was decoded with (undefined: not decoded yet). */
  holder: Strategy | undefined
  state: StrategyState | null | undefined
  ttlMs: number
  changed: boolean
}

type WriteOutcome = { written: false } | { written: true, cas: CasToken | null }

interface Written {
  readonly key: string
  readonly previous: string | null
  readonly cas: CasToken | null
  readonly ttlMs: number
}

export class CasExecutor {
  readonly #timeoutMs: number
  readonly #backendName: string
  /** The backend's clock (its `now()`), read afresh on every compare-and-swap attempt. */
  readonly #now: () => number
  /** Per set of storage keys: requests waiting for the batch in flight. Present while a batch runs. */
  readonly #queues = new Map<string, Waiting[]>()

  constructor (timeoutMs: number, backendName: string, now: () => number) {
    this.#timeoutMs = timeoutMs
    this.#backendName = backendName
    this.#now = now
  }

  /** Decides and charges one op (mode 'hit'), batched with concurrent requests for the same key. */
  async hit (protocol: MemcachedProtocol, item: StatefulItem): Promise<Decision> {
    return (await this.#submit(protocol, [item], true)).decisions[0]!
  }

  /**
   * Several stateful ops of one request, all-or-nothing (mode 'hit' with several limits): every
   * state is read and every op stepped; when `proceed` is false (another limit already rejected)
   * or any op rejects, nothing is written.
   */
  async hitAll (protocol: MemcachedProtocol, items: readonly StatefulItem[], proceed: boolean): Promise<BatchOutcome> {
    if (items.length === 0) return { decisions: [], committed: proceed }
    return await this.#submit(protocol, items, proceed)
  }

  /** Decides without writing (mode 'check'): one read. */
  async check (protocol: MemcachedProtocol, item: StatefulItem, now: number): Promise<Decision> {
    const stored = await protocol.get(item.key)
    const { strategy, limit, windowMs, cost, bounds } = item.op
    return { ...strategy.step(decodeWith(strategy, stored), now, limit, windowMs, cost, bounds).decision, decidedAt: now }
  }

  /**
   * Gives back (mode 'refund') what the charge made at `op.chargedAt` still holds, in a CAS loop;
   * strategies without `refund` are left unchanged.
   */
  async refund (protocol: MemcachedProtocol, item: StatefulItem, budgetMs = this.#timeoutMs): Promise<Decision> {
    const { strategy, limit, windowMs, cost, chargedAt, bounds } = item.op
    if (strategy.refund === undefined) return untouchedDecision(limit)
    const started = performance.now()
    for (let attempt = 0; ; attempt++) {
      const stored = await protocol.get(item.key)
      const now = this.#now()
      const result = strategy.refund(decodeWith(strategy, stored), now, limit, windowMs, cost, chargedAt, bounds)
      const raw = result.state === null ? null : strategy.encode(result.state)
      if ((await writeState(protocol, item.key, stored, raw, result.ttlMs, now)).written) return { ...result.decision, decidedAt: now }
      await this.#beforeRetry(started, attempt, budgetMs)
    }
  }

  #submit (protocol: MemcachedProtocol, items: readonly StatefulItem[], proceed: boolean): Promise<BatchOutcome> {
    return new Promise<BatchOutcome>((resolve, reject) => {
      const keys = [...new Set(items.map((i) => i.key))].sort()
      const batchKey = keys.join('\n')
      const deadline = this.#timeoutMs > 0 ? performance.now() + this.#timeoutMs : Infinity
      const entry: Waiting = { items, proceed, deadline, resolve, reject }
      const waiting = this.#queues.get(batchKey)
      if (waiting !== undefined) {
        waiting.push(entry)
        return
      }
      this.#queues.set(batchKey, [entry])
      this.#drain(protocol, batchKey, keys).catch(() => {}) // never rejects; see #drain
    })
  }

  /** Runs batches for a key set until no request waits. Never rejects: failures reject the batch's requests. */
  async #drain (protocol: MemcachedProtocol, batchKey: string, keys: readonly string[]): Promise<void> {
    for (;;) {
      const batch = this.#queues.get(batchKey)!
      if (batch.length === 0) {
        this.#queues.delete(batchKey)
        return
      }
      this.#queues.set(batchKey, [])
      try {
        await this.#runBatch(protocol, keys, batch)
      } catch (error) {
        for (const entry of batch) entry.reject(error)
      }
    }
  }

  async #runBatch (protocol: MemcachedProtocol, keys: readonly string[], batch: Waiting[]): Promise<void> {
    const started = performance.now()
    let entries = batch
    for (let attempt = 0; ; attempt++) {
      entries = this.#withoutExpired(entries)
      if (entries.length === 0) return
      const reads = await Promise.all(keys.map(async (key) => await protocol.get(key)))
      const now = this.#now()
      const slots = new Map<string, Slot>(keys.map((key, i) => [key, { stored: reads[i]!, holder: undefined, state: undefined, ttlMs: 0, changed: false }]))
      const outcomes = entries.map((entry) => decideEntry(entry, slots, now))

      const written: Written[] = []
      let lost = false
      for (const key of keys) {
        const slot = slots.get(key)!
        if (!slot.changed) continue
        const raw = slot.state == null ? null : slot.holder!.encode(slot.state)
        const outcome = await writeState(protocol, key, slot.stored, raw, slot.ttlMs, now)
        if (!outcome.written) {
          lost = true
          break
        }
        written.push({ key, previous: slot.stored?.value ?? null, cas: outcome.cas, ttlMs: slot.ttlMs })
      }
      if (!lost) {
        entries.forEach((entry, i) => { entry.resolve(outcomes[i]!) })
        return
      }
      // Another process wrote one of the keys first: undo what this batch wrote, decide again.
      const committed = entries.filter((_, i) => outcomes[i]!.committed).flatMap((entry) => entry.items)
      await this.#undo(protocol, written, committed, now)
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
   * Undoes the writes of a batch that lost a race on a later key: restores the previous value if
   * the item is still the one written (CAS), else refunds the batch's charges on that key through
   * the strategy (charges made at `now`). A failed undo leaves the charge in place (limited early,
   * never late).
   */
  async #undo (protocol: MemcachedProtocol, written: readonly Written[], committed: readonly StatefulItem[], now: number): Promise<void> {
    await Promise.all(written.map(async ({ key, previous, cas, ttlMs }) => {
      try {
        let restored: boolean
        if (cas === null) {
          // The batch deleted the state: put the previous one back unless someone wrote meanwhile.
          restored = previous === null || (await protocol.store('add', key, previous, expirationOf(ttlMs))) !== null
        } else if (previous === null) {
          restored = await protocol.delete(key, cas)
        } else {
          restored = (await protocol.store('set', key, previous, expirationOf(ttlMs), cas)) !== null
        }
        if (restored) return
        for (const item of committed) if (item.key === key) await this.refund(protocol, { ...item, op: { ...item.op, chargedAt: now } })
      } catch {
        // Left charged: see above.
      }
    }))
  }

  async #beforeRetry (started: number, attempt: number, budgetMs = this.#timeoutMs): Promise<void> {
    const elapsed = performance.now() - started
    if ((budgetMs > 0 && elapsed >= budgetMs) || attempt >= MAX_ATTEMPTS) {
      throw new MemcachedError(`gave up after ${attempt + 1} conflicting CAS writes in ${Math.round(elapsed)} ms`)
    }
    // Other processes won the race; a short random pause keeps them from colliding again in step.
    if (attempt > 0) await sleep(Math.random() * Math.min(attempt, 5))
  }
}

/**
 * Steps every op of one request on the batch's current states, ops on the same key one after
 * the other. If the request may proceed and every op is allowed, its new states become the
 * current ones (to be written); otherwise the states stay as they were.
 */
function decideEntry (entry: Waiting, slots: Map<string, Slot>, now: number): BatchOutcome {
  const pending = new Map<string, PendingState>()
  // Rejections whose strategy keeps its state (an offence recorded): written whatever the request's outcome.
  let kept: Map<string, PendingState> | undefined
  const decisions = entry.items.map(({ op, key }) => {
    const slot = slots.get(key)!
    const before = pending.get(key)
    const state = before === undefined ? stateFor(slot, op.strategy) : convert(before.holder, before.state, op.strategy)
    const result = op.strategy.step(state, now, op.limit, op.windowMs, op.cost, op.bounds)
    const next = { holder: op.strategy, state: result.state, ttlMs: result.ttlMs }
    if (result.decision.allowed) pending.set(key, next)
    else if (result.keep === true) (kept ??= new Map()).set(key, next)
    result.decision.decidedAt = now
    return result.decision
  })
  const committed = entry.proceed && decisions.every((d) => d.allowed)
  if (committed) for (const [key, next] of pending) adopt(slots.get(key)!, next)
  if (kept !== undefined) for (const [key, next] of kept) adopt(slots.get(key)!, next)
  return { decisions, committed }
}

interface PendingState {
  readonly holder: Strategy
  readonly state: StrategyState | null
  readonly ttlMs: number
}

/** Makes `next` the slot's current state, to be written. */
function adopt (slot: Slot, next: PendingState): void {
  slot.holder = next.holder
  slot.state = next.state
  slot.ttlMs = next.ttlMs
  slot.changed = true
}

/** The slot's state as `strategy` reads it (decoded once per strategy instance). */
function stateFor (slot: Slot, strategy: Strategy): StrategyState | undefined {
  if (slot.holder === undefined) {
    slot.state = decodeWith(strategy, slot.stored)
    slot.holder = strategy
    return slot.state ?? undefined
  }
  return convert(slot.holder, slot.state, strategy)
}

/** A state decoded by one strategy instance, as another reads it (through the stored encoding). */
function convert (holder: Strategy, state: StrategyState | null | undefined, strategy: Strategy): StrategyState | undefined {
  if (state == null) return undefined
  return holder === strategy ? state : strategy.decode(holder.encode(state))
}

function decodeWith (strategy: Strategy, stored: CasValue | null): StrategyState | undefined {
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
