/**
 * The example app: a small API showing the common ways to limit routes with fastify-traffik.
 * `build()` returns the app without listening, so tests can inject into it.
 */
import websocket from '@fastify/websocket'
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import Fastify, { type FastifyInstance } from 'fastify'
import { CalendarQuota, Concurrency, EXEMPTED, InMemoryBackend, TokenBucket, limitMessages, traffik, type ThrottleBackend } from '../lib/index.js'
import { createTenantBackends, registerTenantRoutes, type TenantOptions } from './multi-tenant.js'

export interface BuildOptions {
  /** Where counters live. @default a new InMemoryBackend */
  backend?: ThrottleBackend
  /** Fastify logger. @default false */
  logger?: boolean
  /** Trust X-Forwarded-For from the proxy in front of the app. @default false */
  trustProxy?: boolean | string
  /** Backends of the multi-tenant routes (see multi-tenant.ts). @default Redis from REDIS_URL, else in memory */
  tenants?: TenantOptions
}

export async function build (options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false, trustProxy: options.trustProxy ?? false })

  const tenants = createTenantBackends(options.tenants)
  // Metrics: OpenTelemetry counters of every decision (shadow ones included), scraped by
  // Prometheus from /metrics below.
  const metrics = new PrometheusExporter({ preventServerStart: true })
  const meterProvider = new MeterProvider({ readers: [metrics] })
  app.addHook('onClose', async () => { await meterProvider.shutdown() })
  await app.register(traffik, {
    telemetry: { meter: meterProvider.getMeter('fastify-traffik'), tracer: false },
    backend: options.backend ?? new InMemoryBackend(),
    // Multi-tenant: each request's tier picks the backend its dynamic limits count in.
    backends: tenants.backends,
    resolveBackend: tenants.resolveBackend,
    // Every route: 100 requests per minute per client address, unless the route says otherwise.
    global: { rate: '100/min' }
  })

  // Prometheus scrapes the limiter's metrics here (never limited itself).
  app.get('/metrics', { config: { rateLimit: false } }, (request, reply) => {
    reply.hijack()
    metrics.getMetricsRequestHandler(request.raw, reply.raw)
  })

  // Global limit only.
  app.get('/', async () => ({ hello: 'world', try: ['/metrics', '/search?q=x', 'POST /login', 'POST /sign-in', '/reports (x-api-key)', '/quota', '/tenant/data (x-tenant-tier, x-tenant-id)', 'ws://…/chat'] }))

  // WebSocket: 10 connections a minute per address (checked before the upgrade: a 429, no
  // socket), and 5 messages per 10 s per connection's client; an excess message gets a
  // { type: 'rate_limited', retryAfter, ... } frame instead of an echo.
  await app.register(websocket)
  const chatMessages = app.throttle.create({ uid: 'chat-messages', rate: '5/10s' })
  app.get('/chat', { websocket: true, config: { rateLimit: { rate: '10/min' } } }, (socket, request) => {
    limitMessages(socket, request, chatMessages, {
      onMessage: (data) => { socket.send(`echo: ${String(data)}`) },
      onThrottled: 'frame'
    })
  })

  // A stricter limit for an expensive route: replaces the global one here.
  app.get('/search', { config: { rateLimit: { rate: '10/min' } } }, async (request) => {
    return { results: [], query: (request.query as { q?: string }).q ?? '' }
  })

  // Several limits at once, all-or-nothing: 5 per minute and 20 per hour per address; and a
  // tighter 3 per minute on trial in shadow mode: it counts and reports (an info log line, a
  // 'shadow-throttled' decision event) the logins it would have rejected, and rejects none.
  app.post('/login', {
    config: { rateLimit: [{ rate: '5/min' }, { rate: '20/hour' }, { uid: 'login-trial', rate: '3/min', shadow: true }] }
  }, async (request) => ({ ok: true, trialWouldReject: (request.rateLimit?.shadowThrottled.length ?? 0) > 0 }))

  // Only failed sign-ins count (skipSuccessful: a success gives its charge back once answered),
  // so a service account behind a shared address is never locked out by its own successes: 5
  // failures a minute, refused at the 6th before the handler runs. Repeat offenders are blocked
  // for 5, then 15 minutes, and banned (403) for a day at the third offence within the day.
  app.post('/sign-in', {
    config: {
      rateLimit: {
        uid: 'sign-in',
        rate: '5/min',
        skipSuccessful: true,
        escalation: {
          blocks: [5 * 60_000, 15 * 60_000],
          periodMs: 86_400_000,
          ban: { after: 3 },
          onBanReach: (request) => { request.log.warn({ ip: request.ip }, 'sign-in: client banned') }
        }
      }
    }
  }, async (request, reply) => {
    const { password } = (request.body ?? {}) as { password?: string }
    if (password !== 'open sesame') return await reply.code(401).send({ ok: false })
    return { ok: true }
  })

  // A custom identifier (the API key, falling back to the address), a token bucket that allows
  // bursts, and a cost per request; internal callers are exempt.
  app.get('/reports', {
    config: {
      rateLimit: {
        uid: 'reports',
        rate: '60/min',
        strategy: new TokenBucket({ burst: 20 }),
        identifier: (request) => {
          if (request.headers['x-internal-token'] === 'let-me-in') return EXEMPTED
          const key = request.headers['x-api-key']
          return typeof key === 'string' && key.length > 0 ? `key:${key}` : `ip:${request.ip}`
        },
        cost: (request) => ((request.query as { full?: string }).full === 'true' ? 5 : 1)
      }
    }
  }, async () => ({ report: 'ok' }))

  // An expensive route: at most 2 exports in flight per client (a slot is given back when the
  // response ends; one never given back lapses after 5 minutes), 30 per hour, and 500 per
  // calendar month in Berlin, what a month leaves unused carried into the next up to 100.
  app.post('/exports', {
    config: {
      rateLimit: [
        { uid: 'exports-in-flight', rate: '2/5min', strategy: new Concurrency() },
        { uid: 'exports', rate: '30/hour' },
        {
          uid: 'exports-monthly',
          rate: { limit: 500, windowMs: 1 },
          strategy: new CalendarQuota({ period: 'month', zone: 'Europe/Berlin', rollover: { cap: 100 } })
        }
      ]
    }
  }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 50)) // the expensive part
    return { exported: true }
  })

  // How much quota is left on /reports, without consuming any.
  app.get('/quota', { config: { rateLimit: false } }, async (request) => {
    const decision = await app.throttle.get('reports')!.stat(request)
    return { limit: decision.limit, remaining: decision.remaining, resetMs: decision.resetMs }
  })

  // Per-tier limits in per-tier backends: GET /tenant/data with x-tenant-tier and x-tenant-id.
  registerTenantRoutes(app, tenants)

  // Never limited. Liveness: the process answers.
  app.get('/health', { config: { rateLimit: false } }, async () => ({ status: 'ok' }))

  // Readiness: every backend the plugin owns answers its probe (each within 500 ms); 503 and the
  // failing backend's state and error otherwise, so the instance leaves the load balancer's rotation.
  app.get('/ready', { config: { rateLimit: false } }, async (_request, reply) => {
    const health = await app.throttle.health({ timeoutMs: 500 })
    return await reply.code(health.ok ? 200 : 503).send(health)
  })

  return app
}
