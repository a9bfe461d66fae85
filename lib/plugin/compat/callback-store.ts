/**
 * A `@fastify/rate-limit` callback store as compat reads it: `incr(key, callback, timeWindow, max)`
 * answers `{ current, ttl }`, and the store is the limiter (its own window, its own counting). The
 * request is allowed while `current <= max`, as the old plugin decides it.
 */
import { invalidOption } from '../../errors.js'
import type { RateLimitStore, RateLimitStoreCtor } from './options.js'

/** What one store call says about a request. */
export interface StoreCount { current: number, ttl: number }

/** Calls `incr` and settles once, whatever the store does with its callback (a throw is an error too). */
export async function countWithStore (store: RateLimitStore, key: string, timeWindow: number, max: number): Promise<StoreCount> {
  return await new Promise<StoreCount>((resolve, reject) => {
    store.incr(key, (error, result) => {
      if (error !== null && error !== undefined) reject(error)
      else resolve(readCount(result))
    }, timeWindow, max)
  })
}

/** A store answer that is not `{ current, ttl }` with numbers counts as nothing (the old plugin read NaN there). */
function readCount (result: unknown): StoreCount {
  const r = (result ?? {}) as { current?: unknown, ttl?: unknown }
  const current = typeof r.current === 'number' && Number.isFinite(r.current) ? r.current : 0
  const ttl = typeof r.ttl === 'number' && Number.isFinite(r.ttl) && r.ttl > 0 ? r.ttl : 0
  return { current, ttl }
}

/** `new Store(options)`: the store must be a constructor whose instances have `incr` and `child`. */
export function openStore (Store: RateLimitStoreCtor, options: Record<string, unknown>, where: string): RateLimitStore {
  const store = new Store(options)
  checkStore(store, where)
  return store
}

/** The store of a route or of `fastify.rateLimit(options)`: the old plugin's `store.child(merged options)`. */
export function childStore (store: RateLimitStore, options: Record<string, unknown>, where: string): RateLimitStore {
  const child = store.child(options)
  checkStore(child, `${where}: store.child()`)
  return child
}

function checkStore (store: unknown, where: string): void {
  const s = store as Partial<RateLimitStore> | null
  if (s === null || typeof s !== 'object' || typeof s.incr !== 'function' || typeof s.child !== 'function') {
    invalidOption(where, 'a store with incr(key, callback, timeWindow, max) and child(routeOptions)', store)
  }
}
