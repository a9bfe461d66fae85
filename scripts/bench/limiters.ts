/**
 * Installs the limiter a scenario names on a Fastify app. Every limiter keys clients by the
 * `x-client` header (so rotating keys cost the same for each) and allows every request.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { MeterLike, TracerLike } from '../../lib/index.js'
import { BENCH_LIMIT, BENCH_WINDOW_MS, type Scenario } from './scenarios.js'

const clientOf = (request: FastifyRequest): string => (request.headers['x-client'] as string | undefined) ?? request.ip

export async function installLimiter (app: FastifyInstance, scenario: Scenario): Promise<void> {
  switch (scenario.limiter) {
    case 'bare': return
    case 'empty-hook':
    case 'empty-hook-headers': return installEmptyHook(app, scenario.limiter === 'empty-hook-headers')
    case 'traffik': return await installTraffik(app, scenario)
    case 'fastify-rate-limit': return await installFastifyRateLimit(app, scenario)
    case 'rate-limiter-flexible': return await installRateLimiterFlexible(app, scenario)
  }
}

function installEmptyHook (app: FastifyInstance, headers: boolean): void {
  app.addHook('onRoute', (route) => {
    route.preHandler = (request, reply, done) => {
      clientOf(request)
      if (headers) {
        reply.header('x-ratelimit-limit', 1000)
        reply.header('x-ratelimit-remaining', 999)
        reply.header('x-ratelimit-reset', 60)
      }
      done()
    }
  })
}

/**
 * The published build, as users run it: the TypeScript sources through tsx would carry the
 * loader's per-closure bookkeeping and under-report the library.
 */
export async function builtPackage (): Promise<typeof import('../../lib/index.js')> {
  const built: string = '../../dist/esm/lib/index.js'
  return await import(built) as typeof import('../../lib/index.js')
}

async function installTraffik (app: FastifyInstance, scenario: Scenario): Promise<void> {
  const traffik = await builtPackage()
  const registry = traffik as unknown as Record<string, new (...args: unknown[]) => unknown>
  let backend: InstanceType<typeof traffik.ThrottleBackend>
  if (scenario.backend === 'memory') backend = new traffik.InMemoryBackend()
  else if (scenario.backend === 'cluster') backend = new traffik.ClusterBackend({ namespace: 'bench' })
  else {
    const name = scenario.backend === 'redis' ? 'RedisBackend' : 'MemcachedBackend'
    const driver = scenario.driver === undefined ? {} : { driver: scenario.driver }
    backend = new registry[name]!(scenario.connection, { namespace: `bench${process.pid}`, ...driver, ...scenario.backendOptions }) as typeof backend
  }
  const strategyName = scenario.strategy ?? 'FixedWindow'
  // GCRA and LeakyBucket space requests evenly (no burst by default): with 50 connections on one
  // key most requests would be rejected, so they get a burst and the allowed path is measured.
  const strategyOptions = strategyName === 'GCRA' || strategyName === 'LeakyBucket' ? { burst: 1_000_000 } : undefined
  const strategy = new registry[strategyName]!(strategyOptions) as InstanceType<typeof traffik.FixedWindow>
  const rate = { limit: BENCH_LIMIT, windowMs: BENCH_WINDOW_MS }
  if (scenario.dynamic === true) {
    await app.register(traffik.traffik, {
      backend,
      resolveBackend: () => backend,
      global: { rate, strategy, identifier: clientOf, dynamicBackend: true }
    })
  } else {
    const telemetry = scenario.telemetry === true ? await benchTelemetry(app) : undefined
    await app.register(traffik.traffik, { backend, global: { rate, strategy, identifier: clientOf, ...scenario.throttleOptions }, telemetry, ...(scenario.overridesInDecision === true ? { overrides: { inDecision: true } } : {}) })
  }
}

/**
 * Telemetry as a deployment runs it: the OpenTelemetry SDK aggregating metrics for a Prometheus
 * scrape, and every span recorded and handed to a batch processor (whose exporter drops them).
 */
async function benchTelemetry (app: FastifyInstance): Promise<{ meter: MeterLike, tracer: TracerLike }> {
  const { PrometheusExporter } = await import('@opentelemetry/exporter-prometheus')
  const { MeterProvider } = await import('@opentelemetry/sdk-metrics')
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base')
  const meterProvider = new MeterProvider({ readers: [new PrometheusExporter({ preventServerStart: true })] })
  const dropping = { export: (_spans: unknown[], done: (result: { code: number }) => void) => { done({ code: 0 }) }, shutdown: async () => {} }
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropping)] })
  app.addHook('onClose', async () => { await Promise.all([meterProvider.shutdown(), tracerProvider.shutdown()]) })
  return { meter: meterProvider.getMeter('fastify-traffik'), tracer: tracerProvider.getTracer('fastify-traffik') }
}

async function installFastifyRateLimit (app: FastifyInstance, scenario: Scenario): Promise<void> {
  const { default: rateLimit } = await import('@fastify/rate-limit')
  const options: Record<string, unknown> = { max: BENCH_LIMIT, timeWindow: BENCH_WINDOW_MS, keyGenerator: clientOf }
  if (scenario.backend === 'redis') {
    const { Redis } = await import('ioredis')
    options.redis = new Redis(scenario.connection!)
    options.nameSpace = `bench${process.pid}:`
  }
  await app.register(rateLimit, options)
}

async function installRateLimiterFlexible (app: FastifyInstance, scenario: Scenario): Promise<void> {
  const rlf = await import('rate-limiter-flexible')
  const points = BENCH_LIMIT
  const duration = BENCH_WINDOW_MS / 1000
  let limiter: { consume(key: string): Promise<unknown> }
  if (scenario.backend === 'redis') {
    const { Redis } = await import('ioredis')
    limiter = new rlf.RateLimiterRedis({ storeClient: new Redis(scenario.connection!), points, duration, keyPrefix: `bench${process.pid}` })
  } else if (scenario.backend === 'memcached') {
    // Its memcached store speaks the `memcached` npm client's callback API; with memjs every
    // consume() fails, so a benchmark would measure the error path.
    throw new Error('rate-limiter-flexible memcached needs the `memcached` npm client, which is not installed')
  } else {
    limiter = new rlf.RateLimiterMemory({ points, duration })
  }
  app.addHook('onRequest', async (request, reply) => {
    try {
      await limiter.consume(clientOf(request))
    } catch {
      await reply.code(429).send({ error: 'Too Many Requests' })
    }
  })
}
