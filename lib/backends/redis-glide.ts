/**
 * The driver adapter for Valkey GLIDE (`@valkey/valkey-glide` 2.x): a `GlideClient` (standalone)
 * or a `GlideClusterClient`. Every command goes through `customCommand` with its raw arguments,
 * which GLIDE routes by key on a cluster (EVAL and EVALSHA by their first key). Scripts are sent
 * as EVAL then EVALSHA like for the other clients rather than through GLIDE's `invokeScript`:
 * that one answers a NOSCRIPT with SCRIPT LOAD and a second EVALSHA (three round trips where EVAL
 * takes one) and keeps a copy of every script in its native layer until released. GLIDE's types
 * stay here (only the parts used, described below) and never reach the public declarations.
 */
import { connect as tcpConnect } from 'node:net'
import type { RedisClient, RedisDriver, RedisNode } from './redis-driver.js'

type Reply = unknown
type Route = 'randomNode' | { type: 'routeByAddress', host: string, port: number }

/** The parts of a GLIDE client (standalone or cluster) this adapter uses. */
interface GlideLike {
  customCommand(args: string[], options?: { route?: Route }): Promise<Reply>
  exec(batch: object, raiseOnError: boolean): Promise<unknown[] | null>
  close(errorMessage?: string): void
}

/** The parts of the GLIDE module this adapter uses (imported only when needed). */
interface GlideModule {
  GlideClient: { createClient(config: object): Promise<GlideLike> }
  Batch: new (isAtomic: boolean) => { customCommand(args: string[]): unknown }
  ClusterBatch: new (isAtomic: boolean) => { customCommand(args: string[]): unknown }
}

let glideModule: Promise<GlideModule> | undefined
async function loadGlide (): Promise<GlideModule> {
  glideModule ??= import('@valkey/valkey-glide' as string) as Promise<GlideModule>
  return await glideModule
}

/** True for a GLIDE client (`GlideClient` or `GlideClusterClient`). */
export function isGlide (value: object): boolean {
  return typeof (value as { customCommand?: unknown }).customCommand === 'function' &&
    typeof (value as { invokeScript?: unknown }).invokeScript === 'function'
}

/** Only the cluster client routes scripts to a chosen node. */
function isGlideCluster (value: object): boolean {
  return typeof (value as { invokeScriptWithRoute?: unknown }).invokeScriptWithRoute === 'function'
}

/** Where and how a client made from a URL connects. */
interface GlideTarget {
  readonly host: string
  readonly port: number
  readonly config: Record<string, unknown>
}

/**
 * The configuration of a `GlideClient` made from a `redis://` or `rediss://` URL, with the same
 * fail-fast settings as the other libraries: a request timeout that gives up on a hung server,
 * reconnects backing off to at most 400 ms, and GLIDE's connection timeout set to the backend's
 * (a shorter one cut TLS handshakes short on a loaded host, hiding their errors behind "timed
 * out"). `clientOptions` are merged over it.
 */
export function glideTarget (url: string, timeoutMs: number, connectTimeoutMs: number, options: Record<string, unknown> = {}): GlideTarget {
  const parsed = new URL(url)
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = parsed.port === '' ? 6379 : Number(parsed.port)
  const database = parsed.pathname.replace(/^\//, '')
  const username = decodeURIComponent(parsed.username)
  const password = decodeURIComponent(parsed.password)
  const { advancedConfiguration, ...rest } = options as { advancedConfiguration?: object }
  const config: Record<string, unknown> = {
    addresses: [{ host, port }],
    useTLS: parsed.protocol === 'rediss:',
    requestTimeout: Math.max(1000, timeoutMs * 4),
    connectionBackoff: { numberOfRetries: 4, factor: 25, exponentBase: 2 },
    ...(password === '' ? {} : { credentials: username === '' ? { password } : { username, password } }),
    ...(database === '' ? {} : { databaseId: Number(database) }),
    ...rest,
    advancedConfiguration: { connectionTimeout: connectTimeoutMs, ...advancedConfiguration }
  }
  return { host, port, config }
}

/**
 * GLIDE retries a refused connection or an unknown host until its connection timeout and then
 * reports only "timed out". A plain TCP connection to the same address shows the real cause at
 * once (Node's ECONNREFUSED, ENOTFOUND…), which is passed to `onError`; a connection that opens
 * says nothing and is closed.
 */
function probeAddress (host: string, port: number, onError: (error: Error) => void): void {
  const socket = tcpConnect({ host, port })
  socket.setTimeout(1000, () => socket.destroy())
  socket.once('connect', () => socket.destroy())
  socket.once('error', (error) => { onError(error) })
}

const text = (args: ReadonlyArray<string | number>): string[] => args.map(String)

/** The primaries of a cluster as `CLUSTER NODES` lists them: those that serve slots and are not failing. */
function primariesOf (nodes: string): Array<{ host: string, port: number }> {
  const found: Array<{ host: string, port: number }> = []
  for (const line of nodes.split('\n')) {
    const [, address = '', flags = '', , , , , , ...slots] = line.trim().split(' ')
    if (!flags.split(',').includes('master') || /fail|noaddr/.test(flags) || slots.length === 0) continue
    const endpoint = address.split('@')[0]!.split(',')[0]!
    const colon = endpoint.lastIndexOf(':')
    found.push({ host: endpoint.slice(0, colon), port: Number(endpoint.slice(colon + 1)) })
  }
  return found
}

/** SCAN, UNLINK and PING, sent through `send` (to one node of a cluster, or to the server). */
function nodeOf (send: (args: string[]) => Promise<Reply>): RedisNode {
  return {
    scan: async (cursor, pattern, count) => {
      const [next, keys] = await send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)]) as [unknown, string[]]
      return [String(next), keys]
    },
    unlink: async (keys) => Number(await send(['UNLINK', ...keys])),
    ping: async () => await send(['PING'])
  }
}

/**
 * The driver for a GLIDE client: `raw` when you passed one (connected already, as
 * `createClient` resolves only then), or one made from `target` on the first `connect()`.
 */
export function glideDriver (raw: RedisClient | undefined, target?: GlideTarget): RedisDriver {
  let client = raw as GlideLike | undefined
  const isCluster = raw !== undefined && isGlideCluster(raw)
  let closed = false
  // A cluster's primaries, found on connect: until then the driver is not ready.
  const send = async (args: string[]): Promise<Reply> => {
    if (client === undefined) throw new Error('not connected yet')
    return await client.customCommand(args)
  }
  let primaries: RedisNode[] | undefined = isCluster ? undefined : [nodeOf(send)]
  const script = (command: 'EVAL' | 'EVALSHA') => async (body: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> =>
    await send([command, body, String(keys.length), ...keys, ...text(args)])
  const closedByClient = (): boolean => (client as { isClosed?: boolean } | undefined)?.isClosed === true

  const driver: RedisDriver = {
    ...nodeOf(send),
    name: 'valkey-glide',
    get client () { return client as RedisClient },
    isCluster,
    get ready () { return client !== undefined && primaries !== undefined && !closed && !closedByClient() },
    get state () { return closed || closedByClient() ? 'closed' : client === undefined ? 'connecting' : 'ready' },
    muteErrors: () => {
      // GLIDE has no error events: failures reach the caller of each command only.
    },
    connect: async (onError, signal) => {
      if (closed || closedByClient()) throw new Error('the client was closed')
      if (client === undefined) client = await createClient(target!, onError, signal, () => closed)
      if (primaries === undefined) {
        const cluster = client
        const nodes = primariesOf(String(await cluster.customCommand(['CLUSTER', 'NODES'], { route: 'randomNode' })))
        primaries = nodes.map(({ host, port }) => nodeOf(async (args) => await cluster.customCommand(args, { route: { type: 'routeByAddress', host, port } })))
      }
    },
    close: async () => {
      closed = true
      // Pending commands are rejected at once; GLIDE has no graceful close to wait for.
      if (!closedByClient()) client?.close()
    },
    evalSha: script('EVALSHA'),
    eval: script('EVAL'),
    get: async (key) => await send(['GET', key]) as string | null,
    set: async (key, value, options = {}) => {
      const args = ['SET', key, value]
      if (options.ttlMs !== undefined) args.push('PX', String(options.ttlMs))
      if (options.onlyIfAbsent === true) args.push('NX')
      return (await send(args)) === 'OK'
    },
    del: async (key) => Number(await send(['DEL', key])),
    incrBy: async (key, amount) => Number(await send(['INCRBY', key, String(amount)])),
    pexpire: async (key, ttlMs) => Number(await send(['PEXPIRE', key, String(ttlMs)])) === 1,
    mget: async (keys) => await send(['MGET', ...keys]) as Array<string | null>,
    setAll: async (entries, ttlMs) => {
      const { Batch, ClusterBatch } = await loadGlide()
      // An atomic batch is MULTI … EXEC; on a cluster its keys share a slot, so it goes to one node.
      const batch = isCluster ? new ClusterBatch(true) : new Batch(true)
      for (const [key, value] of entries) batch.customCommand(ttlMs === undefined ? ['SET', key, value] : ['SET', key, value, 'PX', String(ttlMs)])
      if (client === undefined) throw new Error('not connected yet')
      await client.exec(batch, true)
    },
    primaries: () => primaries ?? []
  }
  return driver
}

/**
 * Makes the client, retrying while the failure may pass, until `signal` aborts. Every failure
 * goes to `onError` (with the TCP probe's cause beside GLIDE's "timed out"). A client made after
 * the driver was closed is closed at once.
 */
async function createClient (target: GlideTarget, onError: (error: Error) => void, signal: AbortSignal, isClosed: () => boolean): Promise<GlideLike> {
  const { GlideClient } = await loadGlide()
  for (;;) {
    probeAddress(target.host, target.port, onError)
    try {
      const client = await GlideClient.createClient(target.config)
      if (isClosed() || signal.aborted) {
        client.close()
        throw new Error('the client was closed')
      }
      return client
    } catch (error) {
      if (isClosed() || signal.aborted) throw error
      onError(error as Error)
      await new Promise((resolve) => setTimeout(resolve, 50))
      if (isClosed() || signal.aborted) throw error
    }
  }
}
