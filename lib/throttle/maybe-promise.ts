/**
 * Sync-or-async plumbing. User functions and backends may answer synchronously or with a promise;
 * the request path stays synchronous (no promise allocated) for as long as every answer is.
 */

export function isPromiseLike<T> (value: unknown): value is PromiseLike<T> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}

/** Applies `fn` now if `value` is plain, or when it resolves if it is a promise. */
export function mapMaybe<T, R> (value: T | PromiseLike<T>, fn: (value: T) => R | PromiseLike<R>): R | Promise<R> {
  if (isPromiseLike<T>(value)) return Promise.resolve(value).then(fn)
  return fn(value) as R | Promise<R>
}
