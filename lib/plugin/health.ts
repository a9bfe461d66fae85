/**
 * `fastify.throttle.health()`: every owned backend's `healthCheck()`, each under a deadline, in
 * one readiness answer a probe route can return as it is (plain JSON, errors included).
 */
import type { BackendState } from '../../types/backend.js'
import { withinDeadline } from '../backends/backend-guard.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'

/** Options of `fastify.throttle.health()`. */
export interface HealthOptions {
  /**
   * How long each backend's probe may take, in ms; a probe still running then counts as unhealthy.
   * @default 1000
   */
  timeoutMs?: number
}

/** One backend in `fastify.throttle.health()`'s answer. */
export interface BackendHealthReport {
  /** The backend's class name, e.g. `'RedisBackend'`. */
  readonly name: string
  readonly namespace: string
  /** Where the backend stands (see BackendState): `'degraded'` while a degraded start has not connected yet. */
  readonly state: BackendState
  /** Whether its probe answered within the deadline. */
  readonly healthy: boolean
  /** How long the probe took, in whole ms. */
  readonly latencyMs: number
  /** Why the probe failed: the coded error's `code` and `message`. */
  readonly error?: { readonly code: string | undefined, readonly message: string }
}

/** What `fastify.throttle.health()` resolves. */
export interface ThrottleHealth {
  /** True when every backend is healthy: the app can decide limits. */
  readonly ok: boolean
  /** The default backend first, then `backends` in the order given. */
  readonly backends: readonly BackendHealthReport[]
}

const HEALTH_OPTIONS: readonly string[] = ['timeoutMs']

/** Probes every backend at once; never rejects for a failing backend. */
export async function checkHealth (backends: readonly ThrottleBackend[], options: HealthOptions = {}): Promise<ThrottleHealth> {
  if (options === null || typeof options !== 'object') invalidOption('health options', 'an object', options)
  rejectUnknownKeys('health', options, HEALTH_OPTIONS)
  const { timeoutMs = 1000 } = options
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) invalidOption('timeoutMs', 'a positive number of milliseconds', timeoutMs)
  const reports = await Promise.all(backends.map(async (backend) => await report(backend, timeoutMs)))
  return { ok: reports.every((r) => r.healthy), backends: reports }
}

async function report (backend: ThrottleBackend, timeoutMs: number): Promise<BackendHealthReport> {
  const started = performance.now()
  let healthy: boolean
  let error: Error | undefined
  try {
    // healthCheck() never throws by contract; a custom one that does, or hangs, is unhealthy.
    const health = await withinDeadline(Promise.resolve(backend.healthCheck()), timeoutMs, backend.name)
    healthy = health.healthy === true
    error = health.error
  } catch (thrown) {
    healthy = false
    error = thrown instanceof Error ? thrown : new Error(String(thrown))
  }
  const latencyMs = Math.round(performance.now() - started)
  const base = { name: backend.name, namespace: backend.namespace, state: backend.state, healthy, latencyMs }
  if (healthy) return base
  return { ...base, error: { code: (error as { code?: string } | undefined)?.code, message: error?.message ?? 'unhealthy' } }
}
