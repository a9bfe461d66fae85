/**
 * The conformance suite must fail backends that break the contract. A small Map-based backend is
 * broken on purpose, one defect at a time, and the case that guards against that defect must fail
 * (while the same case passes on the correct variant).
 */
import t from 'tap'
import { BackendError, ThrottleBackend } from '../../lib/index.js'
import { type BackendLock } from '../../lib/backend.js'
import { conformanceCases, runBackendConformance, type BackendConformanceOptions } from '../../lib/testing/index.js'

interface Defects {
  /** Locks that every caller gets at once. */
  noLock?: boolean
  /** TTLs ignored. */
  immortal?: boolean
  /** Driver errors thrown raw (no wrapping). */
  rawErrors?: boolean
  /** reset() that clears every namespace. */
  greedyReset?: boolean
}

/** A string store on a Map shared by every namespace, with an await between every read and write. */
const shared = new Map<string, { value: string, expiresAt: number }>()

class DriverFailure extends Error {}

function mapBackend (defects: Defects, failing = false): new (namespace: string) => ThrottleBackend {
  return class MapBackend extends ThrottleBackend {
    static override driverError = defects.rawErrors === true ? null : DriverFailure
    constructor (namespace: string) { super({ namespace }) }
    #key (key: string): string {
      if (failing) throw new DriverFailure('connection refused')
      return `${this.namespace}:${key}`
    }

    async #tick (): Promise<void> { await new Promise((resolve) => setImmediate(resolve)) }
    #live (key: string): string | null {
      const entry = shared.get(key)
      if (entry === undefined) return null
      if (entry.expiresAt <= Date.now()) { shared.delete(key); return null }
      return entry.value
    }

    async get (key: string): Promise<string | null> { const k = this.#key(key); await this.#tick(); return this.#live(k) }
    async set (key: string, value: string, ttlMs?: number): Promise<void> {
      const k = this.#key(key)
      await this.#tick()
      shared.set(k, { value, expiresAt: ttlMs === undefined || defects.immortal === true ? Infinity : Date.now() + ttlMs })
    }

    async delete (key: string): Promise<boolean> { const k = this.#key(key); const live = this.#live(k) !== null; shared.delete(k); return live }
    async increment (key: string, amount = 1): Promise<number> {
      const k = this.#key(key)
      const value = Number(this.#live(k) ?? 0) + amount
      if (!Number.isSafeInteger(value)) throw new DriverFailure('not an integer')
      shared.set(k, { value: String(value), expiresAt: shared.get(k)?.expiresAt ?? Infinity })
      return value
    }

    async expire (key: string, ttlMs: number): Promise<boolean> {
      const k = this.#key(key)
      const entry = shared.get(k)
      if (this.#live(k) === null || entry === undefined) return false
      if (defects.immortal !== true) entry.expiresAt = Date.now() + ttlMs
      return true
    }

    getLock (name: string, ttlMs: number): BackendLock {
      const key = this.#key(`lock:${name}`)
      const token = Math.random().toString(36)
      return {
        acquire: async ({ blocking = true, timeoutMs = 1000 } = {}) => {
          const deadline = Date.now() + timeoutMs
          for (;;) {
            if (defects.noLock === true || this.#live(key) === null) {
              shared.set(key, { value: token, expiresAt: Date.now() + ttlMs })
              return true
            }
            if (!blocking || Date.now() > deadline) return false
            await new Promise((resolve) => setTimeout(resolve, 2))
          }
        },
        release: async () => { if (shared.get(key)?.value === token) shared.delete(key) }
      }
    }

    async reset (): Promise<void> {
      this.#key('') // reaches the (failing) driver
      for (const key of [...shared.keys()]) if (defects.greedyReset === true || key.startsWith(`${this.namespace}:`)) shared.delete(key)
    }
  }
}

/** Runs one case of the suite on a backend and resolves its error, or undefined when it passed. */
async function outcomeOf (caseName: string, defects: Defects, extra: Partial<BackendConformanceOptions> = {}): Promise<Error | undefined> {
  const Backend = mapBackend(defects)
  const Failing = mapBackend(defects, true)
  let outcome: Error | undefined
  let ran = false
  const runs: Array<Promise<void>> = []
  runBackendConformance({
    test: (name, fn) => {
      if (name !== caseName) return
      ran = true
      runs.push(fn().then(() => { outcome = undefined }, (error: Error) => { outcome = error }))
    },
    makeBackend: (namespace) => new Backend(namespace),
    makeFailingBackend: () => new Failing('failing'),
    concurrency: 30,
    ...extra
  })
  await Promise.all(runs)
  if (!ran) throw new Error(`no case named ${caseName}`)
  return outcome
}

const guards: Array<[string, Defects]> = [
  ['concurrent hits on one key never over-admit, for every strategy', { noLock: true }],
  ['concurrent holders never overlap', { noLock: true }],
  ['locks are exclusive and non-blocking acquire answers at once', { noLock: true }],
  ['keys expire after ttlMs, and not before', { immortal: true }],
  ['driver failures surface as BackendError with cause, and healthCheck reports them', { rawErrors: true }],
  ['reset clears its own namespace and nothing else', { greedyReset: true }]
]

for (const [caseName, defects] of guards) {
  t.test(`the suite catches ${Object.keys(defects).join(', ')} in "${caseName}"`, async (t) => {
    t.ok(conformanceCases.some((c) => c.name === caseName), 'the case exists')
    t.equal(await outcomeOf(caseName, {}), undefined, 'the case passes on the correct backend')
    const failure = await outcomeOf(caseName, defects)
    t.ok(failure !== undefined, 'the case fails on the broken backend')
    t.equal(failure?.name, 'AssertionError', `it fails by assertion: ${failure?.message.split('\n')[0] ?? ''}`)
  })
}

t.test('the suite validates its options', async (t) => {
  t.throws(() => runBackendConformance({ test: 'no' as never, makeBackend: () => { throw new Error('unused') }, makeFailingBackend: null }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => runBackendConformance({ test: () => {}, makeBackend: undefined as never, makeFailingBackend: null }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.throws(() => runBackendConformance({ test: () => {}, makeBackend: () => { throw new Error('unused') }, makeFailingBackend: null, concurrency: 1 }), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  t.ok(BackendError !== undefined)
})
