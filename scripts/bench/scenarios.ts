/**
 * Benchmark scenarios: which limiter, on which backend, with which strategy, over which keys.
 */
export type LimiterKind = 'bare' | 'traffik' | 'fastify-rate-limit' | 'rate-limiter-flexible' |
  /** Floors for reading the numbers: an empty route hook, and an empty hook that sets three headers. */
  'empty-hook' | 'empty-hook-headers'

export interface Scenario {
  /** Row label in the report. */
  name: string
  limiter: LimiterKind
  /** 'memory' | 'redis' | 'memcached' | 'cluster' (ClusterBackend: the server is a node:cluster primary and its workers) */
  backend: 'memory' | 'redis' | 'memcached' | 'cluster'
  /** 'cluster' only: how many workers serve (sharing one port). @default 2 */
  workers?: number
  /** fastify-traffik strategy class name. @default 'FixedWindow' */
  strategy?: string
  /** 'hot': every request from one client; 'rotating': 10 000 clients in turn. */
  keys: 'hot' | 'rotating'
  /** fastify-traffik only: resolve the backend per request (dynamicBackend) instead of pinning it. */
  dynamic?: boolean
  /** fastify-traffik only: OpenTelemetry metrics and spans on (the real SDK). */
  telemetry?: boolean
  /** fastify-traffik on Redis only: fleet overrides read inside each decision's script (`overrides: { inDecision: true }`). @default false */
  overridesInDecision?: boolean
  /** fastify-traffik on Redis only: the client library RedisBackend makes its client with (its `driver` option). @default 'ioredis' */
  driver?: 'ioredis' | 'iovalkey' | 'node-redis' | 'valkey-glide'
  /** fastify-traffik only: extra options of its network backend (e.g. `{ autoPipelining: true }`). */
  backendOptions?: Record<string, unknown>
  /** fastify-traffik only: extra throttle options of the limit (e.g. `{ lease: true }`). */
  throttleOptions?: Record<string, unknown>
  /** Connection of the network backend, filled in by the harness. */
  connection?: string
}

/** High enough that nothing is rejected during a run: the benchmarks measure the common, allowed path. */
export const BENCH_LIMIT = 1_000_000_000
export const BENCH_WINDOW_MS = 60_000
