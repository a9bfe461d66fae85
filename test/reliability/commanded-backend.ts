/**
 * A custom backend written against the public ThrottleBackend contract only (storage primitives
 * in a Map, the generic lock-read-step-write `evaluate` inherited), whose behaviour a test
 * switches on command: answer, fail (a driver error), or hang (never answer; the deadline
 * `timeoutMs` must turn that into a timeout). Hung calls are released when the backend closes,
 * so nothing stays pending after a test.
 */
import { ThrottleBackend, type ThrottleBackendOptions } from '../../lib/index.js'
import { type BackendLock } from '../../lib/backend.js'

export type BackendBehaviour = 'ok' | 'fail' | 'hang'

/** What a driver would throw; the base class wraps it as BackendError with `cause`. */
export class DriverError extends Error {}

interface Entry { value: string, expiresAt: number }

export class CommandedBackend extends ThrottleBackend {
  behaviour: BackendBehaviour = 'ok'
  /** Calls made to the primitives, by behaviour at the time of the call. */
  readonly calls: Record<BackendBehaviour, number> = { ok: 0, fail: 0, hang: 0 }
  readonly #data = new Map<string, Entry>()
  readonly #locks = new Map<string, { token: number, expiresAt: number }>()
  readonly #hung = new Set<() => void>()
  #token = 0

  constructor (options: ThrottleBackendOptions = {}) {
    super({ timeoutMs: 25, ...options })
  }

  /** Runs `fn` according to the current behaviour. */
  #act<T> (fn: () => T): Promise<T> {
    const behaviour = this.behaviour
    this.calls[behaviour]++
    if (behaviour === 'fail') return Promise.reject(new DriverError('connection refused (commanded)'))
    if (behaviour === 'hang') {
      return new Promise<T>((resolve) => {
        // Released at close with a value nobody reads any more (the deadline already answered).
        const release = (): void => { resolve(undefined as T) }
        this.#hung.add(release)
      })
    }
    return Promise.resolve().then(fn)
  }

  #live (key: string): Entry | undefined {
    const entry = this.#data.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= Date.now()) {
      this.#data.delete(key)
      return undefined
    }
    return entry
  }

  async get (key: string): Promise<string | null> {
    return await this.#act(() => this.#live(key)?.value ?? null)
  }

  async set (key: string, value: string, ttlMs?: number): Promise<void> {
    await this.#act(() => { this.#data.set(key, { value, expiresAt: ttlMs === undefined ? Infinity : Date.now() + ttlMs }) })
  }

  async delete (key: string): Promise<boolean> {
    return await this.#act(() => this.#data.delete(key))
  }

  async increment (key: string, amount = 1): Promise<number> {
    return await this.#act(() => {
      const entry = this.#live(key)
      const value = Number(entry?.value ?? 0) + amount
      this.#data.set(key, { value: String(value), expiresAt: entry?.expiresAt ?? Infinity })
      return value
    })
  }

  async expire (key: string, ttlMs: number): Promise<boolean> {
    return await this.#act(() => {
      const entry = this.#live(key)
      if (entry === undefined) return false
      entry.expiresAt = Date.now() + ttlMs
      return true
    })
  }

  getLock (name: string, ttlMs: number): BackendLock {
    let mine = 0
    const tryTake = (): boolean => {
      const held = this.#locks.get(name)
      if (held !== undefined && held.expiresAt > Date.now()) return false
      mine = ++this.#token
      this.#locks.set(name, { token: mine, expiresAt: Date.now() + ttlMs })
      return true
    }
    return {
      acquire: async (options = {}) => {
        const deadline = Date.now() + (options.timeoutMs ?? 1000)
        for (;;) {
          if (await this.#act(tryTake)) return true
          if (options.blocking === false || Date.now() >= deadline) return false
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
      },
      release: async () => {
        if (this.#locks.get(name)?.token === mine) this.#locks.delete(name)
      }
    }
  }

  async reset (): Promise<void> {
    await this.#act(() => { this.#data.clear() })
  }

  protected override async onClose (): Promise<void> {
    for (const release of this.#hung) release()
    this.#hung.clear()
  }
}
