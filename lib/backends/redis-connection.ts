/**
 * How RedisBackend gets and lets go of its ioredis client: from a URL (ioredis is imported only
 * then, so users of other backends never load it), a client (a `Redis`, a `Cluster`, or the one
 * `@fastify/redis` decorates), or an async factory. Clients made from a URL get settings that
 * make failures fast instead of queued; clients passed in keep their own settings.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { invalidOption } from '../errors.js'
import { withDeadline } from './backend-guard.js'

/** An ioredis client: a standalone/Sentinel `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster

/** What RedisBackend connects with: a `redis://`/`rediss://` URL, a client, or a factory of one. */
export type RedisConnection = string | RedisClient | (() => RedisClient | Promise<RedisClient>)

/** A resolved client and whether the backend must close it. */
export interface OwnedClient {
  readonly client: RedisClient
  readonly owned: boolean
}

/** Throws InvalidOptionError unless `connection` has one of the accepted shapes. */
export function validateConnection (connection: unknown, option = 'connection'): void {
  if (typeof connection === 'string') {
    if (!/^rediss?:\/\//i.test(connection)) invalidOption(option, "a 'redis://' or 'rediss://' URL", connection)
    return
  }
  if (typeof connection === 'function') return
  if (!isRedisClient(connection)) invalidOption(option, 'a Redis URL, an ioredis Redis or Cluster client, or a function returning one', connection)
}

export function isRedisClient (value: unknown): value is RedisClient {
  return value !== null && typeof value === 'object' &&
    typeof (value as { evalsha?: unknown }).evalsha === 'function' &&
    typeof (value as { status?: unknown }).status === 'string'
}

export function isCluster (client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true
}

/**
 * Settings for clients the backend creates. The offline queue is off and nothing is retried or
 * re-sent after a reconnect: a decision either gets its answer now or fails now, and a command
 * that was already answered by `onError` is never replayed later. `socketTimeout` drops a
 * connection whose server stopped answering (a hung process), so commands do not pile up behind it.
 */
export function defaultClientOptions (timeoutMs: number, connectTimeoutMs: number): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: connectTimeoutMs,
    socketTimeout: Math.max(1000, timeoutMs * 4),
    // Reconnect attempts back off to at most 400 ms, so limits apply again well within a second of Redis returning.
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt, 10), 400)
  }
}

/** Turns a connection into a client. `clientOptions` apply to clients made from a URL only. */
export async function resolveClient (
  connection: RedisConnection,
  settings: { timeoutMs: number, connectTimeoutMs: number, clientOptions: RedisOptions | undefined, closeClient: boolean | undefined }
): Promise<OwnedClient> {
  if (typeof connection === 'string') {
    const { Redis } = await import('ioredis')
    const client = new Redis(connection, { ...defaultClientOptions(settings.timeoutMs, settings.connectTimeoutMs), ...settings.clientOptions })
    // Without a listener an 'error' event would be logged by ioredis on every failed reconnect;
    // failures reach callers through their own rejected calls instead.
    client.on('error', () => {})
    return { client, owned: settings.closeClient ?? true }
  }
  if (typeof connection === 'function') {
    const client = await connection()
    if (!isRedisClient(client)) invalidOption('connection', 'a factory returning an ioredis Redis or Cluster client', client)
    const owned = settings.closeClient ?? true
    if (owned) client.on('error', () => {})
    return { client, owned }
  }
  return { client: connection, owned: settings.closeClient ?? false }
}

/**
 * Resolves once `client` is ready; starts a lazy client; rejects when it is not ready within
 * `timeoutMs` or ends for good.
 */
export async function waitUntilReady (client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return
  if (client.status === 'end') throw new Error('the Redis client was closed (status end)')
  const ready = new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined
    const onReady = (): void => { cleanup(); resolve() }
    const onError = (error: Error): void => { lastError = error }
    const onEnd = (): void => { cleanup(); reject(lastError ?? new Error('the Redis connection ended')) }
    const cleanup = (): void => {
      client.off('ready', onReady)
      client.off('error', onError)
      client.off('end', onEnd)
    }
    client.on('ready', onReady)
    client.on('error', onError)
    client.on('end', onEnd)
    if (client.status === 'wait') client.connect().catch((error: Error) => { lastError = error })
    // Check again: the client may have become ready while the listeners were attached.
    if ((client.status as string) === 'ready') onReady()
  })
  try {
    await withDeadline(ready, timeoutMs, 'RedisBackend')
  } catch (error) {
    throw new Error(`could not connect to Redis within ${timeoutMs} ms: ${(error as Error).message}`, { cause: error })
  }
}

/** Closes a client gracefully (QUIT), or drops it when the server does not answer in time. */
export async function closeClient (client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'end') return
  // Resolve only once the socket is gone, so closing leaves no handle behind.
  const ended = new Promise<void>((resolve) => client.once('end', () => { resolve() }))
  if (client.status === 'ready') {
    try {
      await withDeadline(client.quit(), timeoutMs, 'RedisBackend')
      await withDeadline(ended, timeoutMs, 'RedisBackend')
      return
    } catch {
      // The server did not answer in time: drop the connection instead.
    }
  }
  client.disconnect()
  await withDeadline(ended, timeoutMs, 'RedisBackend').catch(() => {})
}

/** Every master of a cluster, or the client itself. */
export function masters (client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client]
}
