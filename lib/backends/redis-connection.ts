/**
 * How RedisBackend gets and lets go of its client: from a URL (the client library is imported
 * only then, so users of other backends never load it), a client of any supported library
 * (recognised by its shape, or named with the `driver` option), or an async factory of one.
 * Clients made from a URL get settings that make failures fast instead of queued; clients
 * passed in keep their own settings.
 */
import { BackendError, invalidOption } from '../errors.js'
import { definitiveFailure, oneLine } from './redis-connect-failure.js'
import type { RedisClient, RedisDriver, RedisDriverName } from './redis-driver.js'
import { createIoredisClient, ioredisDefaults, ioredisDriver, isIoredisLike } from './redis-ioredis.js'
import { glideDriver, glideTarget, isGlide } from './redis-glide.js'
import { createNodeRedisClient, isNodeRedis, nodeRedisDriver } from './redis-node-redis.js'

/** What RedisBackend connects with: a `redis://`/`rediss://` URL, a client, or a factory of one. */
export type RedisConnection = string | RedisClient | (() => RedisClient | Promise<RedisClient>)

export const DRIVER_NAMES: readonly RedisDriverName[] = ['ioredis', 'iovalkey', 'node-redis', 'valkey-glide']

/** A resolved client and whether the backend must close it. */
export interface OwnedDriver {
  readonly driver: RedisDriver
  readonly owned: boolean
}

/** What resolving a connection needs to know. */
export interface ConnectionSettings {
  readonly timeoutMs: number
  readonly connectTimeoutMs: number
  readonly clientOptions: object | undefined
  readonly closeClient: boolean | undefined
  readonly driver: RedisDriverName | undefined
  /** ioredis/iovalkey clients made from a URL get `enableAutoPipelining` (unless `clientOptions` says otherwise). */
  readonly autoPipelining?: boolean
  /** ioredis/iovalkey clients (made from a URL or passed in) send the scripts of one turn of the event loop in one write. */
  readonly coalesceWrites?: boolean
}

const ACCEPTED = 'a Redis URL, a client (ioredis, iovalkey, node-redis, Valkey GLIDE), or a function returning one'

/** Throws InvalidOptionError unless `connection` has one of the accepted shapes. */
export function validateConnection (connection: unknown, option = 'connection', driver?: RedisDriverName): void {
  if (typeof connection === 'string') {
    if (!/^rediss?:\/\//i.test(connection)) invalidOption(option, "a 'redis://' or 'rediss://' URL", connection)
    return
  }
  if (typeof connection === 'function') return
  if (connection === null || typeof connection !== 'object' || driverNameOf(connection, driver) === undefined) invalidOption(option, ACCEPTED, connection)
}

/** The library a client comes from: the one named, or the one its shape shows. */
export function driverNameOf (client: object, named?: RedisDriverName): RedisDriverName | undefined {
  if (named !== undefined) return named
  if (isIoredisLike(client)) return 'ioredis'
  if (isNodeRedis(client)) return 'node-redis'
  if (isGlide(client)) return 'valkey-glide'
  return undefined
}

function driverFor (client: RedisClient, name: RedisDriverName, settings: ConnectionSettings): RedisDriver {
  if (name === 'node-redis') return nodeRedisDriver(client)
  if (name === 'valkey-glide') return glideDriver(client)
  return ioredisDriver(client, name, { coalesceWrites: settings.coalesceWrites })
}

async function clientFromUrl (name: RedisDriverName, url: string, settings: ConnectionSettings): Promise<RedisClient> {
  const { timeoutMs, connectTimeoutMs, clientOptions, autoPipelining = false } = settings
  if (name === 'node-redis') return await createNodeRedisClient(url, timeoutMs, connectTimeoutMs, clientOptions as Record<string, unknown> | undefined)
  return await createIoredisClient(name as 'ioredis' | 'iovalkey', url, { ...ioredisDefaults(timeoutMs, connectTimeoutMs), enableAutoPipelining: autoPipelining, ...clientOptions })
}

/** Turns a connection into a driver. `clientOptions` apply to clients made from a URL only. */
export async function resolveDriver (connection: RedisConnection, settings: ConnectionSettings): Promise<OwnedDriver> {
  if (typeof connection === 'string') {
    const name = settings.driver ?? 'ioredis'
    if (name === 'valkey-glide') {
      // GLIDE connects while it makes its client: the driver makes it on connect, so the failures are reported like the others'.
      const { timeoutMs, connectTimeoutMs, clientOptions } = settings
      return { driver: glideDriver(undefined, glideTarget(connection, timeoutMs, connectTimeoutMs, clientOptions as Record<string, unknown> | undefined)), owned: settings.closeClient ?? true }
    }
    const client = await clientFromUrl(name, connection, settings)
    const driver = driverFor(client, name, settings)
    driver.muteErrors()
    return { driver, owned: settings.closeClient ?? true }
  }
  if (typeof connection === 'function') {
    let client: RedisClient
    try {
      client = await connection()
    } catch (error) {
      // A factory that connects while it makes its client (GLIDE's createClient) fails here:
      // reported like the failures of a client the backend made.
      const meaning = error instanceof Error ? definitiveFailure(error) : undefined
      const detail = error instanceof Error ? oneLine(error) : String(error)
      throw new BackendError('RedisBackend.initialize', `could not connect to Redis: the connection factory failed${meaning === undefined ? '' : `: ${meaning}`}: ${detail}`, { cause: error })
    }
    const name = client !== null && typeof client === 'object' ? driverNameOf(client, settings.driver) : undefined
    if (name === undefined) invalidOption('connection', `a factory returning ${ACCEPTED.replace(/, or a function.*$/, '')}`, client)
    const owned = settings.closeClient ?? true
    const driver = driverFor(client, name, settings)
    if (owned) driver.muteErrors()
    return { driver, owned }
  }
  return { driver: driverFor(connection, driverNameOf(connection, settings.driver)!, settings), owned: settings.closeClient ?? false }
}
