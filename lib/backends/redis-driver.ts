/**
 * The Redis driver port: the few operations RedisBackend, its lock and its scripts need, and
 * nothing else. One adapter per client library implements it (redis-ioredis.ts for ioredis and
 * iovalkey, redis-node-redis.ts, redis-glide.ts); nothing outside the adapters speaks a client's
 * own API. Keys are always full (namespaced) keys; on a cluster the keys of one call share a slot.
 */

/** A client this package can drive: an ioredis or iovalkey `Redis`/`Cluster`, a node-redis client or cluster, or a Valkey GLIDE client. */
export type RedisClient = object

/** Which client library a client comes from (the `driver` option of RedisBackend). */
export type RedisDriverName = 'ioredis' | 'iovalkey' | 'node-redis' | 'valkey-glide'

/** One primary of a cluster (or the standalone server): what a namespace sweep and a health check need. */
export interface RedisNode {
  /** `SCAN cursor MATCH pattern COUNT count`: the next cursor and a batch of keys. */
  scan(cursor: string, pattern: string, count: number): Promise<[string, string[]]>
  /** `UNLINK keys…` (one slot on a cluster); resolves how many existed. */
  unlink(keys: readonly string[]): Promise<number>
  /** `PING`. */
  ping(): Promise<unknown>
}

/** What RedisBackend asks of a client. */
export interface RedisDriver extends RedisNode {
  /** The client library, for messages. */
  readonly name: RedisDriverName
  /** The client as its library made it (what `RedisBackend.client` returns). */
  readonly client: RedisClient
  /** True for a cluster client: multi-key calls must then stay within one slot. */
  readonly isCluster: boolean
  /** True when a command sent now goes out at once (read on every decision: no await, no allocation). */
  readonly ready: boolean
  /** The connection's state in the client's own words, for messages (e.g. `reconnecting`). */
  readonly state: string
  /**
   * Starts connecting when the client is not connected yet, and resolves once it is ready.
   * Every connection error seen meanwhile goes to `onError`; rejects when the client gives up
   * (closed, or its reconnect strategy stopped). After `signal` aborts it stops listening.
   */
  connect(onError: (error: Error) => void, signal: AbortSignal): Promise<void>
  /** Listens to the client's error events, so a client the backend owns never logs or throws an unheard one (callers see failures through their own calls). */
  muteErrors(): void
  /** Closes the client: gracefully when the server answers within `timeoutMs`, otherwise by dropping the connection. */
  close(timeoutMs: number): Promise<void>
  /** `EVALSHA sha numkeys keys… args…`; rejects with the server's `NOSCRIPT …` error when the script is not loaded. */
  evalSha(sha: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown>
  /** `EVAL source numkeys keys… args…` (which also loads the script on that node). */
  eval(source: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown>
  get(key: string): Promise<string | null>
  /** `SET key value [PX ttlMs] [NX]`; resolves whether it was written. */
  set(key: string, value: string, options?: { readonly ttlMs?: number, readonly onlyIfAbsent?: boolean }): Promise<boolean>
  /** `DEL key`; resolves how many keys were removed. */
  del(key: string): Promise<number>
  incrBy(key: string, amount: number): Promise<number>
  /** `PEXPIRE key ms`; resolves whether the key exists. */
  pexpire(key: string, ttlMs: number): Promise<boolean>
  /** `MGET keys…` (one slot on a cluster). */
  mget(keys: readonly string[]): Promise<Array<string | null>>
  /** `MULTI`, one `SET key value [PX ttlMs]` per entry, `EXEC` (one slot on a cluster); rejects when any SET failed. */
  setAll(entries: ReadonlyArray<readonly [string, string]>, ttlMs?: number): Promise<void>
  /** The primaries of a cluster, or the driver itself for one server. */
  primaries(): readonly RedisNode[]
}

/** True for the server's answer to EVALSHA when the script is not in its cache (GLIDE words it `NoScriptError`). */
export function isNoScript (error: unknown): boolean {
  const message = (error as Error | undefined)?.message
  return typeof message === 'string' && (message.includes('NOSCRIPT') || message.includes('NoScriptError'))
}
