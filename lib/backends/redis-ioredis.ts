/**
 * The driver adapter for ioredis 5 and 6 (so the client `@fastify/redis` decorates) and for
 * iovalkey, its fork with the same API: a `Redis` (standalone or Sentinel) or a `Cluster`.
 * The only file that speaks their API; their types stay here and never reach the public
 * declarations.
 */
import type { Socket } from 'node:net'
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import { withDeadline } from './backend-guard.js'
import type { RedisClient, RedisDriver, RedisDriverName, RedisNode } from './redis-driver.js'

type IoClient = Redis | Cluster

/** True for an ioredis or iovalkey client (`Redis` or `Cluster`). */
export function isIoredisLike (value: object): boolean {
  return typeof (value as { evalsha?: unknown }).evalsha === 'function' &&
    typeof (value as { status?: unknown }).status === 'string'
}

/**
 * Settings for clients the backend creates. The offline queue is off and nothing is retried or
 * re-sent after a reconnect: a decision either gets its answer now or fails now, and a command
 * that was already answered by `onError` is never replayed later. `socketTimeout` drops a
 * connection whose server stopped answering (a hung process), so commands do not pile up behind it.
 */
export function ioredisDefaults (timeoutMs: number, connectTimeoutMs: number): RedisOptions {
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

/** A client made from a URL, by ioredis or iovalkey (imported only then). */
export async function createIoredisClient (name: 'ioredis' | 'iovalkey', url: string, options: object): Promise<RedisClient> {
  const { Redis } = (name === 'ioredis' ? await import('ioredis') : await import('iovalkey' as string)) as typeof import('ioredis')
  return new Redis(url, options as RedisOptions)
}

/** Every command to one node or to a whole cluster: the part of the port both share. */
function nodeOf (client: Redis | Cluster): RedisNode {
  return {
    scan: async (cursor, pattern, count) => await (client as Redis).scan(cursor, 'MATCH', pattern, 'COUNT', count),
    unlink: async (keys) => await client.unlink(...keys),
    ping: async () => await client.ping()
  }
}

/**
 * Write coalescing for one client: the first script sent in a turn of the event loop corks the
 * connection's socket and the turn's end (setImmediate) uncorks it, so every script sent in
 * between leaves in one write, one system call on the app host and one read on the server,
 * instead of one each. The order of the commands, and so every reply, is unchanged. A Cluster
 * client has one socket per node and none of its own: it is left as it is.
 */
function writeCoalescer (client: IoClient): () => void {
  let held: Socket | undefined
  const release = (): void => {
    const socket = held
    held = undefined
    socket?.uncork()
  }
  return () => {
    if (held !== undefined) return
    // The socket of the current connection: a reconnect replaces it, so it is looked up each turn.
    const socket = (client as { stream?: Socket }).stream
    if (socket === undefined || typeof socket.cork !== 'function') return
    held = socket
    socket.cork()
    setImmediate(release)
  }
}

/** How the adapter sends: `coalesceWrites` holds the scripts of one turn of the event loop for one write (see writeCoalescer). */
export interface IoredisDriverOptions {
  readonly coalesceWrites?: boolean
}

export function ioredisDriver (raw: RedisClient, name: RedisDriverName = 'ioredis', options: IoredisDriverOptions = {}): RedisDriver {
  const client = raw as IoClient
  const isCluster = (client as { isCluster?: boolean }).isCluster === true
  const coalesce = options.coalesceWrites === true && !isCluster ? writeCoalescer(client) : undefined
  return {
    ...nodeOf(client),
    name,
    client,
    isCluster,
    get ready () { return client.status === 'ready' },
    get state () { return client.status },
    muteErrors: () => { client.on('error', () => {}) },
    connect: async (onError, signal) => { await waitForReady(client, onError, signal) },
    close: async (timeoutMs) => { await closeClient(client, timeoutMs) },
    // The decision path: the client's own promise, not one more around it.
    evalSha: (sha, keys, args) => {
      coalesce?.()
      return client.evalsha(sha, keys.length, ...keys, ...args)
    },
    eval: (source, keys, args) => {
      coalesce?.()
      return client.eval(source, keys.length, ...keys, ...args)
    },
    get: async (key) => await client.get(key),
    set: async (key, value, options = {}) => {
      const { ttlMs, onlyIfAbsent = false } = options
      let answer: string | null
      if (ttlMs === undefined) answer = onlyIfAbsent ? await client.set(key, value, 'NX') : await client.set(key, value)
      else answer = onlyIfAbsent ? await client.set(key, value, 'PX', ttlMs, 'NX') : await client.set(key, value, 'PX', ttlMs)
      return answer === 'OK'
    },
    del: async (key) => await client.del(key),
    incrBy: async (key, amount) => await client.incrby(key, amount),
    pexpire: async (key, ttlMs) => (await client.pexpire(key, ttlMs)) === 1,
    mget: async (keys) => await client.mget(...keys),
    setAll: async (entries, ttlMs) => {
      const transaction = client.multi()
      for (const [key, value] of entries) {
        if (ttlMs === undefined) transaction.set(key, value)
        else transaction.set(key, value, 'PX', ttlMs)
      }
      const results = await transaction.exec()
      const failed = results?.find(([error]) => error !== null)?.[0]
      if (failed != null) throw failed
    },
    primaries: () => isCluster ? (client as Cluster).nodes('master').map(nodeOf) : [nodeOf(client)]
  }
}

/** Resolves once `client` is ready; starts a lazy client; rejects when it ends for good. */
async function waitForReady (client: IoClient, onError: (error: Error) => void, signal: AbortSignal): Promise<void> {
  if (client.status === 'ready') return
  if (client.status === 'end') throw new Error('the client was closed (status end)')
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined
    const onReady = (): void => { cleanup(); resolve() }
    const onClientError = (error: Error): void => { lastError = error; onError(error) }
    const onEnd = (): void => { cleanup(); reject(lastError ?? new Error('the connection ended')) }
    const cleanup = (): void => {
      client.off('ready', onReady)
      client.off('error', onClientError)
      client.off('end', onEnd)
      signal.removeEventListener('abort', cleanup)
    }
    client.on('ready', onReady)
    client.on('error', onClientError)
    client.on('end', onEnd)
    signal.addEventListener('abort', cleanup)
    if (client.status === 'wait') client.connect().catch((error: Error) => { onClientError(error) })
    // Check again: the client may have become ready while the listeners were attached.
    if ((client.status as string) === 'ready') onReady()
  })
}

/** Closes a client gracefully (QUIT), or drops it when the server does not answer in time. */
async function closeClient (client: IoClient, timeoutMs: number): Promise<void> {
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
