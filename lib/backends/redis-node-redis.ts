/**
 * The driver adapter for node-redis (`redis` v5 and later, and `@redis/client`): a client made by
 * `createClient` or a cluster made by `createCluster`. Every command goes through `sendCommand`
 * with its raw arguments, the one call node-redis keeps stable across versions; its types stay
 * here and never reach the public declarations.
 */
import { withDeadline } from './backend-guard.js'
import type { RedisClient, RedisDriver, RedisNode } from './redis-driver.js'

type Args = ReadonlyArray<string | number>

/** The parts of a node-redis client (standalone, or one node of a cluster) this adapter uses. */
interface NodeRedisClient {
  readonly isOpen: boolean
  readonly isReady: boolean
  sendCommand(args: readonly string[]): Promise<unknown>
  multi(): { addCommand(args: readonly string[]): unknown, exec(): Promise<unknown[]> }
  connect(): Promise<unknown>
  close?: () => Promise<void>
  quit?: () => Promise<unknown>
  destroy?: () => void
  disconnect?: () => Promise<void>
  on(event: string, listener: (...args: any[]) => void): unknown
  off(event: string, listener: (...args: any[]) => void): unknown
}

/** The parts of a node-redis cluster this adapter uses. */
interface NodeRedisCluster {
  readonly isOpen: boolean
  readonly masters: readonly object[]
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: readonly string[]): Promise<unknown>
  multi(routing?: string): { addCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: readonly string[]): unknown, exec(): Promise<unknown[]> }
  nodeClient(node: object): Promise<NodeRedisClient>
  connect(): Promise<unknown>
  close?: () => Promise<void>
  destroy?: () => void
  disconnect?: () => Promise<void>
  on(event: string, listener: (...args: any[]) => void): unknown
  off(event: string, listener: (...args: any[]) => void): unknown
}

/** True for a node-redis client or cluster. */
export function isNodeRedis (value: object): boolean {
  return typeof (value as { sendCommand?: unknown }).sendCommand === 'function' &&
    typeof (value as { isOpen?: unknown }).isOpen === 'boolean' &&
    typeof (value as { evalSha?: unknown }).evalSha === 'function'
}

function isNodeRedisCluster (value: object): boolean {
  return Array.isArray((value as { masters?: unknown }).masters) && typeof (value as { nodeClient?: unknown }).nodeClient === 'function'
}

/**
 * A client made from a URL (node-redis is imported only then), with the same fail-fast settings
 * as the other libraries: no offline queue, a socket timeout that drops a hung server's
 * connection, and reconnects backing off to at most 400 ms.
 */
export async function createNodeRedisClient (url: string, timeoutMs: number, connectTimeoutMs: number, options: Record<string, unknown> = {}): Promise<RedisClient> {
  const { createClient } = await import('redis' as string) as { createClient: (options: object) => RedisClient }
  const { socket, ...rest } = options as { socket?: object }
  return createClient({
    url,
    disableOfflineQueue: true,
    ...rest,
    socket: {
      connectTimeout: connectTimeoutMs,
      socketTimeout: Math.max(1000, timeoutMs * 4),
      reconnectStrategy: (attempt: number) => Math.min(50 * 2 ** Math.min(attempt + 1, 10), 400),
      ...socket
    }
  })
}

const text = (args: Args): string[] => args.map(String)

/** SCAN, UNLINK and PING on one node client. */
function nodeOf (send: (args: string[], firstKey?: string) => Promise<unknown>): RedisNode {
  return {
    scan: async (cursor, pattern, count) => {
      const [next, keys] = await send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)]) as [string, string[]]
      return [String(next), keys]
    },
    unlink: async (keys) => Number(await send(['UNLINK', ...keys], keys[0])),
    ping: async () => await send(['PING'])
  }
}

export function nodeRedisDriver (raw: RedisClient): RedisDriver {
  const isCluster = isNodeRedisCluster(raw)
  const client = raw as NodeRedisClient
  const cluster = raw as NodeRedisCluster
  const send = isCluster
    ? async (args: string[], firstKey?: string): Promise<unknown> => await cluster.sendCommand(firstKey, false, args)
    : async (args: string[]): Promise<unknown> => await client.sendCommand(args)
  const script = (command: 'EVAL' | 'EVALSHA') => async (body: string, keys: readonly string[], args: Args): Promise<unknown> =>
    await send([command, body, String(keys.length), ...keys, ...text(args)], keys[0])
  // A cluster's primaries, as node clients (each answers for its own slots only).
  const primaries: RedisNode[] = []
  return {
    ...nodeOf(send),
    name: 'node-redis',
    client: raw,
    isCluster,
    get ready () { return isCluster ? cluster.isOpen : client.isReady },
    get state () { return isCluster ? (cluster.isOpen ? 'open' : 'closed') : client.isReady ? 'ready' : client.isOpen ? 'reconnecting' : 'closed' },
    muteErrors: () => { (raw as NodeRedisClient).on('error', () => {}) },
    connect: async (onError, signal) => {
      await waitForReady(raw as NodeRedisClient, isCluster, onError, signal)
      if (isCluster) {
        primaries.length = 0
        for (const master of cluster.masters) {
          const node = await cluster.nodeClient(master)
          primaries.push(nodeOf(async (args) => await node.sendCommand(args)))
        }
      }
    },
    close: async (timeoutMs) => { await closeClient(raw as NodeRedisClient, timeoutMs) },
    evalSha: script('EVALSHA'),
    eval: script('EVAL'),
    get: async (key) => await send(['GET', key], key) as string | null,
    set: async (key, value, options = {}) => {
      const args = ['SET', key, value]
      if (options.ttlMs !== undefined) args.push('PX', String(options.ttlMs))
      if (options.onlyIfAbsent === true) args.push('NX')
      return (await send(args, key)) === 'OK'
    },
    del: async (key) => Number(await send(['DEL', key], key)),
    incrBy: async (key, amount) => Number(await send(['INCRBY', key, String(amount)], key)),
    pexpire: async (key, ttlMs) => Number(await send(['PEXPIRE', key, String(ttlMs)], key)) === 1,
    mget: async (keys) => await send(['MGET', ...keys], keys[0]) as Array<string | null>,
    setAll: async (entries, ttlMs) => {
      const command = ([key, value]: readonly [string, string]): string[] => ttlMs === undefined ? ['SET', key, value] : ['SET', key, value, 'PX', String(ttlMs)]
      if (isCluster) {
        const transaction = cluster.multi(entries[0]?.[0])
        for (const entry of entries) transaction.addCommand(entry[0], false, command(entry))
        await transaction.exec()
        return
      }
      const transaction = client.multi()
      for (const entry of entries) transaction.addCommand(command(entry))
      await transaction.exec()
    },
    primaries: () => isCluster ? primaries : [nodeOf(send)]
  }
}

/** Resolves once the client is ready, connecting it unless it is already open; rejects when it gives up. */
async function waitForReady (client: NodeRedisClient, isCluster: boolean, onError: (error: Error) => void, signal: AbortSignal): Promise<void> {
  if (isCluster ? client.isOpen : client.isReady) return
  await new Promise<void>((resolve, reject) => {
    const onReady = (): void => { cleanup(); resolve() }
    const onClientError = (error: Error): void => { onError(error) }
    const cleanup = (): void => {
      client.off('ready', onReady)
      client.off('error', onClientError)
      signal.removeEventListener('abort', cleanup)
    }
    client.on('error', onClientError)
    signal.addEventListener('abort', cleanup)
    if (!isCluster) client.on('ready', onReady)
    if (!client.isOpen) {
      // connect() settles once ready, or rejects when the reconnect strategy gives up.
      client.connect().then(() => { cleanup(); resolve() }, (error: Error) => { cleanup(); reject(error) })
    }
  })
}

/** Closes gracefully (the queue drains), or destroys the socket when the server does not answer in time. */
async function closeClient (client: NodeRedisClient, timeoutMs: number): Promise<void> {
  if (!client.isOpen) return
  try {
    const graceful = client.close !== undefined ? client.close() : client.quit!()
    await withDeadline(Promise.resolve(graceful), timeoutMs, 'RedisBackend')
  } catch {
    try {
      if (client.destroy !== undefined) client.destroy()
      else await client.disconnect?.()
    } catch {
      // Already closed in the meantime.
    }
  }
}
