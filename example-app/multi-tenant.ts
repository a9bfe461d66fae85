/**
 * The multi-tenant part of the example app: each request's counters live in the backend of its
 * tenant's tier, chosen per request by `resolveBackend`; the limits read it with `dynamicBackend`.
 *
 * - enterprise → a dedicated Redis (`ENTERPRISE_REDIS_URL`, else `REDIS_URL`, under its own namespace)
 * - premium    → the shared Redis (`REDIS_URL`)
 * - free       → this process's memory
 *
 * Without a Redis URL every tier gets an in-memory backend of its own, so the example runs with
 * no setup. The tier comes from the `x-tenant-tier` header to keep the demo short; a real app
 * derives it from the authenticated tenant (never from a header the client controls).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InMemoryBackend, RedisBackend, type ThrottleBackend } from '../lib/index.js'

export type Tier = 'enterprise' | 'premium' | 'free'

export interface TenantOptions {
  /** The shared Redis. `null`: none, every tier in memory. @default process.env.REDIS_URL */
  redisUrl?: string | null
  /** The enterprise tier's dedicated Redis. @default process.env.ENTERPRISE_REDIS_URL, else `redisUrl` */
  enterpriseRedisUrl?: string | null
}

export interface TenantBackends {
  /** One backend per tier. */
  readonly byTier: Readonly<Record<Tier, ThrottleBackend>>
  /** For the plugin's `backends` option: it initializes and closes them with the app. */
  readonly backends: ThrottleBackend[]
  /** For the plugin's `resolveBackend` option. */
  resolveBackend(request: FastifyRequest): ThrottleBackend
  /** Whether the Redis tiers really use Redis. */
  readonly usesRedis: boolean
}

/** Requests per minute per tenant, by tier. */
export const TIER_RATES: Readonly<Record<Tier, string>> = { enterprise: '1000/min', premium: '100/min', free: '10/min' }

export function tierOf (request: FastifyRequest): Tier {
  const tier = request.headers['x-tenant-tier']
  return tier === 'enterprise' || tier === 'premium' ? tier : 'free'
}

function urlOrNull (value: string | null | undefined, fallback: string | undefined): string | null {
  if (value === null) return null
  const url = value ?? fallback
  return url === undefined || url === '' ? null : url
}

export function createTenantBackends (options: TenantOptions = {}): TenantBackends {
  const shared = urlOrNull(options.redisUrl, process.env.REDIS_URL)
  const dedicated = shared === null ? null : urlOrNull(options.enterpriseRedisUrl, process.env.ENTERPRISE_REDIS_URL) ?? shared
  const byTier: Record<Tier, ThrottleBackend> = {
    enterprise: dedicated === null ? new InMemoryBackend({ namespace: 'enterprise' }) : new RedisBackend(dedicated, { namespace: 'example-enterprise' }),
    premium: shared === null ? new InMemoryBackend({ namespace: 'premium' }) : new RedisBackend(shared, { namespace: 'example-premium' }),
    free: new InMemoryBackend({ namespace: 'free' })
  }
  return {
    byTier,
    backends: Object.values(byTier),
    resolveBackend: (request) => byTier[tierOf(request)],
    usesRedis: shared !== null
  }
}

/** The tenant API: one limit whose rate follows the tier and whose counters live in the tier's backend. */
export function registerTenantRoutes (app: FastifyInstance, tenants: TenantBackends): void {
  app.get('/tenant/data', {
    config: {
      rateLimit: {
        uid: 'tenant-data',
        rate: (request) => TIER_RATES[tierOf(request)],
        dynamicBackend: true,
        identifier: (request) => {
          const tenant = request.headers['x-tenant-id']
          return typeof tenant === 'string' && tenant.length > 0 ? `tenant:${tenant}` : `ip:${request.ip}`
        }
      }
    }
  }, async (request) => {
    const tier = tierOf(request)
    return { tier, backend: request.throttleBackend === tenants.byTier[tier] ? request.throttleBackend.name : null }
  })
}
