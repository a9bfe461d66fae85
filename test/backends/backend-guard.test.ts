/**
 * The guard of backend classes (lib/backends/backend-guard.ts): a class's methods are never
 * replaced, every guarded call is refused once closed, bounded by `timeoutMs` (per call, or per
 * batch where the class declares it) and wraps driver errors, a late hit is given back, and no
 * subclass can take a method out of the guard.
 */
import t from 'tap'
import { FixedWindow, InMemoryBackend, ManualClock, ThrottleBackend, type ThrottleBackendOptions } from '../../lib/index.js'
import type { BackendLock, Decision, EvaluateMode, EvaluateOp } from '../../lib/backend.js'

class StoreFailure extends Error {}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A store in a Map whose calls take `delayMs` and fail while `failing`. */
class SlowStore extends ThrottleBackend {
  static override driverError = StoreFailure
  delayMs = 0
  failing = false
  /** Calls whose delay has run out. */
  ended = 0
  readonly data = new Map<string, string>()

  constructor (options: ThrottleBackendOptions = {}) {
    super({ timeoutMs: 40, ...options })
  }

  async #call<T> (fn: () => T): Promise<T> {
    await sleep(this.delayMs)
    this.ended++
    if (this.failing) throw new StoreFailure('store down')
    return fn()
  }

  async get (key: string) { return await this.#call(() => this.data.get(key) ?? null) }
  async set (key: string, value: string) { await this.#call(() => { this.data.set(key, value) }) }
  async delete (key: string) { return await this.#call(() => this.data.delete(key)) }
  async increment (key: string, amount = 1) { return await this.#call(() => { const v = Number(this.data.get(key) ?? 0) + amount; this.data.set(key, String(v)); return v }) }
  async expire (key: string) { return await this.#call(() => this.data.has(key)) }
  getLock (): BackendLock { return { acquire: async () => true, release: async () => {} } }
  /** Three batches of `delayMs` each, each bounded by the deadline when the class says per-batch. */
  async reset () {
    for (let batch = 0; batch < 3; batch++) await this.bounded(this.#call(() => {}))
    this.data.clear()
  }
}

class SweepingStore extends SlowStore {
  static override perBatchDeadline = ['reset'] as const
}

const getAsWritten = SlowStore.prototype.get

t.test("a class's methods are never replaced; the instance delegates to one guard per class", async (t) => {
  const a = new SlowStore()
  const b = new SlowStore()
  t.equal(SlowStore.prototype.get, getAsWritten, 'the prototype keeps the method as written')
  t.same(Object.getOwnPropertyNames(a).filter((name) => typeof (a as unknown as Record<string, unknown>)[name] === 'function'), [], 'no method on the instance')
  const guard = Object.getPrototypeOf(a) as object
  t.equal(Object.getPrototypeOf(b), guard, 'instances of one class share their guard')
  t.equal(Object.getPrototypeOf(guard), SlowStore.prototype, "the guard sits in front of the class's prototype")
  t.ok(a instanceof SlowStore && a instanceof ThrottleBackend)
  t.equal(a.constructor, SlowStore)
  t.equal(a.name, 'SlowStore')
  t.not(Object.getPrototypeOf(new SweepingStore()), guard, 'a subclass has a guard of its own')
  t.equal(Object.getPrototypeOf(new InMemoryBackend()), InMemoryBackend.prototype, 'a backend that cannot fail (driverError null) has none')
})

t.test('every guarded call is bounded by timeoutMs, wraps driver errors with cause, and is refused once closed', async (t) => {
  const backend = new SlowStore()
  await backend.initialize()
  await backend.set('k', 'v')
  t.equal(await backend.get('k'), 'v', 'answers within the deadline')

  backend.delayMs = 200
  const started = Date.now()
  const endedBefore = backend.ended
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' }, 'a slow call fails at the deadline')
  // The 40 ms deadline fires before the 200 ms call ends however late timers run on a busy machine.
  t.equal(backend.ended, endedBefore, `rejected before the slow call ended (${Date.now() - started} ms)`)
  await t.rejects(backend.decrement('n'), { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' }, "the base class's defaults are guarded too")

  backend.delayMs = 0
  backend.failing = true
  const error = await backend.increment('n').then(() => undefined, (e: unknown) => e as Error & { code?: string })
  t.equal(error?.code, 'TRAFFIK_ERR_BACKEND', 'a driver error becomes BackendError')
  t.ok(error?.cause instanceof StoreFailure, "with the driver's error as cause")
  t.match(error?.message, /SlowStore\.increment.*store down/)

  await backend.close()
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
  await t.rejects(backend.reset(), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
})

t.test('a class may bound reset and clearPrefix per batch, and nothing else; it cannot leave the guard', async (t) => {
  const whole = new SlowStore()
  const perBatch = new SweepingStore()
  for (const backend of [whole, perBatch]) backend.delayMs = 25
  await t.rejects(whole.reset(), { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' }, 'three batches of 25 ms outlast a 40 ms deadline on the whole call')
  await perBatch.reset()
  t.pass('each batch within its deadline: the sweep completes')
  perBatch.delayMs = 200
  await t.rejects(perBatch.reset(), { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' }, 'a batch that hangs still fails at the deadline')
  perBatch.delayMs = 0
  perBatch.failing = true
  await t.rejects(perBatch.reset(), { code: 'TRAFFIK_ERR_BACKEND' }, 'and driver errors are still wrapped')

  class Unbounded extends SlowStore { static override perBatchDeadline = ['evaluate'] as never }
  t.throws(() => new Unbounded(), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'evaluate cannot leave its per-call deadline')
  class Unknown extends SlowStore { static override perBatchDeadline = ['sweep'] as never }
  t.throws(() => new Unknown(), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'only guarded methods can be named')
  class NotAList extends SlowStore { static override perBatchDeadline = 'reset' as never }
  t.throws(() => new NotAList(), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'as a list')
  class Unguarded extends SlowStore { static override driverError = null as unknown as typeof StoreFailure }
  t.throws(() => new Unguarded(), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /SlowStore declares one/ }, 'nor can a subclass declare that it cannot fail')
  class CannotFail extends InMemoryBackend {}
  t.equal(Object.getPrototypeOf(new CannotFail()), CannotFail.prototype, 'a subclass of a backend that cannot fail has no guard either')
})

t.test('a subclass calling super is guarded once, not once per level', async (t) => {
  class Counting extends SlowStore {
    override async get (key: string) { return await super.get(key) }
  }
  const backend = new Counting()
  backend.failing = true
  const error = await backend.get('k').then(() => undefined, (e: unknown) => e as Error)
  t.ok(error?.cause instanceof StoreFailure, "the cause is the driver's error, not another BackendError")
})

t.test('a hit that lands after its deadline is given back, as charged when it was decided', async (t) => {
  const clock = new ManualClock(60_000)
  const refunds: EvaluateOp[][] = []
  /** Decides on an in-process store, after `delayMs`. */
  class SlowDecider extends SlowStore {
    readonly inner = new InMemoryBackend({ clock })
    override async evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
      if (mode === 'hit') await sleep(this.delayMs)
      return this.inner.evaluate(ops, mode)
    }

    protected override async refundLateCharge (ops: readonly EvaluateOp[]): Promise<void> {
      refunds.push([...ops])
      await super.refundLateCharge(ops)
    }
  }
  const backend = new SlowDecider()
  const op: EvaluateOp = { strategy: new FixedWindow(), key: 'late:{client}', limit: 5, windowMs: 60_000, cost: 1 }
  t.equal((await backend.evaluate([op], 'hit'))[0]!.remaining, 4, 'an answer in time is charged')
  backend.delayMs = 100
  await t.rejects(backend.evaluate([op], 'hit'), { code: 'TRAFFIK_ERR_BACKEND_TIMEOUT' })
  await sleep(150)
  t.equal(refunds.length, 1, 'the late hit was refunded')
  t.equal(refunds[0]![0]!.chargedAt, 60_000, "with chargedAt = the decision's decidedAt")
  t.equal(backend.inner.evaluate([{ ...op, cost: 0 }], 'check')[0]!.remaining, 4, 'only the answered hit is still charged')
})
