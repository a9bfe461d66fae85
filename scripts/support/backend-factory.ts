/**
 * Builds backends and strategies from plain descriptions, so child processes and table-driven
 * tests can name them. Each backend kind is looked up on the public module by its class name.
 */
import * as traffik from '../../lib/index.js'
import type { Strategy } from '../../types/strategy.js'
import type { ThrottleBackend } from '../../lib/index.js'

export interface BackendSetup {
  /** 'memory' | 'redis' | 'memcached' | 'postgres' (the example app's PostgresBackend) | any other exported backend class name */
  kind: string
  /** Connection for network backends: a Redis URL, memcached 'host:port[,host:port]', or a PostgreSQL URL. */
  connection?: string
  namespace?: string
  /** Extra constructor options. */
  options?: Record<string, unknown>
}

const CLASS_BY_KIND: Record<string, string> = { memory: 'InMemoryBackend', redis: 'RedisBackend', memcached: 'MemcachedBackend' }

export async function makeBackend (setup: BackendSetup): Promise<ThrottleBackend> {
  if (setup.kind === 'postgres') {
    // The PostgreSQL backend is the example of a custom backend, not part of the package.
    const { PostgresBackend } = await import('../../example-app/backends/postgres-backend.js')
    const backend = new PostgresBackend(setup.connection!, { ...setup.options, ...(setup.namespace === undefined ? {} : { namespace: setup.namespace }) })
    await backend.initialize()
    return backend
  }
  const className = CLASS_BY_KIND[setup.kind] ?? setup.kind
  const Backend = (traffik as unknown as Record<string, new (...args: unknown[]) => ThrottleBackend>)[className]
  if (Backend === undefined) throw new Error(`fastify-traffik exports no backend class ${className}`)
  const options = { ...setup.options, ...(setup.namespace === undefined ? {} : { namespace: setup.namespace }) }
  const backend = setup.connection === undefined ? new Backend(options) : new Backend(setup.connection, options)
  await backend.initialize()
  return backend
}

/** `{ name: 'TokenBucket', options: {...} }` → `new TokenBucket(options)`. */
export interface StrategySetup {
  name: string
  options?: Record<string, unknown>
}

export function makeStrategy (setup: StrategySetup): Strategy {
  const Strategy = (traffik as unknown as Record<string, new (options?: unknown) => Strategy>)[setup.name]
  if (Strategy === undefined) throw new Error(`fastify-traffik exports no strategy ${setup.name}`)
  return new Strategy(setup.options)
}
