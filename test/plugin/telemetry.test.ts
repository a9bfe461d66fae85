/**
 * Telemetry through the real OpenTelemetry SDK: an in-memory metric reader, an in-memory span
 * exporter and the Prometheus exporter scraped over HTTP.
 */
import { metrics, trace } from '@opentelemetry/api'
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus'
import { MeterProvider, MetricReader, type DataPoint, type Histogram, type MetricData } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { BackendError, EXEMPTED, InMemoryBackend, ManualClock, traffik, type Decision, type TraffikPluginOptions } from '../../lib/index.js'
import { type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'
import { ALIGNED_START } from '../helpers/build-app.js'

/** A pull reader: the test collects when it wants to look. */
class CollectingReader extends MetricReader {
  protected override async onForceFlush (): Promise<void> {}
  protected override async onShutdown (): Promise<void> {}
}

interface Sdk {
  meterProvider: MeterProvider
  reader: CollectingReader
  spans: InMemorySpanExporter
  tracerProvider: BasicTracerProvider
}

function sdk (): Sdk {
  const reader = new CollectingReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const spans = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  return { meterProvider, reader, spans, tracerProvider }
}

async function collect (reader: MetricReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics } = await reader.collect()
  const byName = new Map<string, MetricData>()
  for (const scope of resourceMetrics.scopeMetrics) for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric)
  return byName
}

/** The value of a counter's data point whose attributes include `match`. */
function sum (metric: MetricData | undefined, match: Record<string, unknown>): number {
  if (metric === undefined) return 0
  let total = 0
  for (const point of metric.dataPoints as Array<DataPoint<number>>) {
    if (Object.entries(match).every(([k, v]) => point.attributes[k] === v)) total += point.value
  }
  return total
}

async function appWith (t: Test, options: TraffikPluginOptions, routes: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }), ...options })
  routes(app)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

t.test('a shadow limit of 5/min sees 20 requests: decisions by outcome, near-limit, latency and spans', async (t) => {
  const { meterProvider, reader, spans, tracerProvider } = sdk()
  const app = await appWith(t, {
    telemetry: { meter: meterProvider.getMeter('test'), tracer: tracerProvider.getTracer('test') }
  }, (app) => {
    app.get('/items/:id', { config: { rateLimit: { uid: 'items', rate: '5/min', shadow: true } } }, async () => 'ok')
  })
  for (let i = 0; i < 20; i++) t.equal((await app.inject(`/items/${i}`)).statusCode, 200)
  const m = await collect(reader)
  const labels = { 'traffik.throttle.uid': 'items', 'traffik.backend': 'InMemoryBackend', 'traffik.strategy': 'fixed-window', 'http.route': '/items/:id' }
  t.equal(sum(m.get('traffik.decisions'), { ...labels, 'traffik.outcome': 'allowed' }), 5)
  t.equal(sum(m.get('traffik.decisions'), { ...labels, 'traffik.outcome': 'shadow_throttled' }), 15)
  t.equal(sum(m.get('traffik.near_limit'), labels), 2, 'the 4th and 5th of 5 used at least 80 %')
  t.equal(m.get('traffik.decisions')!.descriptor.unit, '{decision}')
  const latency = m.get('traffik.backend.duration')!
  t.equal(latency.descriptor.unit, 's')
  const points = latency.dataPoints as Array<DataPoint<Histogram>>
  t.equal(points.reduce((n, p) => n + p.value.count, 0), 20, 'one backend call per request')
  t.same(points[0]!.attributes, { 'traffik.backend': 'InMemoryBackend', 'traffik.operation': 'hit' })
  for (const point of (m.get('traffik.decisions')!.dataPoints as Array<DataPoint<number>>)) {
    t.notOk('traffik.key' in point.attributes, 'no client key in the attributes by default')
  }
  const finished = spans.getFinishedSpans()
  t.equal(finished.length, 20)
  t.equal(finished[0]!.name, 'traffik.evaluate')
  t.equal(finished[0]!.kind, 0, 'in memory: an internal span')
  t.equal(finished[0]!.attributes['traffik.throttle.uid'], 'items')
  t.equal(finished[19]!.attributes['traffik.allowed'], false)
  t.notOk('traffik.key' in finished[0]!.attributes)
})

t.test('throttled, error, exempt; backend errors with a failed span; the key only when asked', async (t) => {
  class DownBackend extends InMemoryBackend {
    down = false
    override evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Decision[] {
      if (this.down) return Promise.reject(new BackendError('down.evaluate', 'connection lost')) as unknown as Decision[]
      return super.evaluate(ops, mode)
    }
  }
  const backend = new DownBackend({ clock: new ManualClock(ALIGNED_START) })
  const { meterProvider, reader, spans, tracerProvider } = sdk()
  const app = await appWith(t, {
    backend,
    telemetry: { meter: meterProvider.getMeter('test'), tracer: tracerProvider.getTracer('test'), keyAttribute: true, nearLimitRatio: 0.5 }
  }, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'root', rate: '2/min', identifier: (r) => r.headers['x-free'] === '1' ? EXEMPTED : 'client' } } }, async () => 'ok')
    app.get('/two', { config: { rateLimit: [{ uid: 'a', rate: '1/min' }, { uid: 'b', rate: '9/min', onError: 'allow' }] } }, async () => 'ok')
  })
  t.same(await Promise.all([1, 2, 3].map(async () => (await app.inject('/')).statusCode)), [200, 200, 429])
  t.equal((await app.inject({ url: '/', headers: { 'x-free': '1' } })).statusCode, 200)
  await app.inject('/two')
  await app.inject('/two')
  backend.down = true
  t.equal((await app.inject('/')).statusCode, 429, "fail closed ('throttle')")
  const m = await collect(reader)
  const decisions = m.get('traffik.decisions')
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'root', 'traffik.outcome': 'allowed' }), 2)
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'root', 'traffik.outcome': 'throttled' }), 1)
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'root', 'traffik.outcome': 'exempt' }), 1)
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'root', 'traffik.outcome': 'error' }), 1)
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'root', 'traffik.key': 'root:{client}' }), 4, 'the key when keyAttribute is on')
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'a', 'traffik.outcome': 'throttled' }), 1, 'each limit of a route counts its own verdict')
  t.equal(sum(decisions, { 'traffik.throttle.uid': 'b', 'traffik.outcome': 'allowed' }), 2)
  t.equal(sum(m.get('traffik.near_limit'), { 'traffik.throttle.uid': 'root' }), 2, 'ratio 0.5: 1 of 2 used is near')
  t.equal(sum(m.get('traffik.backend.errors'), { 'traffik.throttle.uid': 'root', 'error.type': 'TRAFFIK_ERR_BACKEND' }), 1)
  const failedSpan = spans.getFinishedSpans().at(-1)!
  t.equal(failedSpan.status.code, 2, 'the failed call is an error span')
  t.equal(failedSpan.kind, 0)
  t.same(failedSpan.attributes['traffik.key'], ['root:{client}'])
  const failedCalls = (m.get('traffik.backend.duration')!.dataPoints as Array<DataPoint<Histogram>>).find((p) => p.attributes['error.type'] === 'TRAFFIK_ERR_BACKEND')
  t.equal(failedCalls?.value.count, 1, 'latency of failed calls is recorded with error.type')

  backend.down = false
  await app.inject('/two') // b fails open below: 'allow' counts as an error
  backend.down = true
  await app.inject('/two')
  const after = await collect(reader)
  t.equal(sum(after.get('traffik.decisions'), { 'traffik.throttle.uid': 'b', 'traffik.outcome': 'error' }), 1, "onError 'allow' counts as an error")
})

t.test('telemetry: true uses the global providers of @opentelemetry/api; meter or tracer can be switched off', async (t) => {
  const { meterProvider, reader, spans, tracerProvider } = sdk()
  metrics.setGlobalMeterProvider(meterProvider)
  trace.setGlobalTracerProvider(tracerProvider)
  t.teardown(() => { metrics.disable(); trace.disable() })
  const app = await appWith(t, { telemetry: true }, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'g', rate: '5/min' } } }, async () => 'ok')
  })
  await app.inject('/')
  t.equal(sum((await collect(reader)).get('traffik.decisions'), { 'traffik.throttle.uid': 'g' }), 1)
  t.equal(spans.getFinishedSpans().length, 1)
  t.equal(spans.getFinishedSpans()[0]!.instrumentationScope.name, 'fastify-traffik')

  const noSpans = await appWith(t, { telemetry: { tracer: false } }, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'ns', rate: '5/min' } } }, async () => 'ok')
  })
  await noSpans.inject('/')
  t.equal(spans.getFinishedSpans().length, 1, 'tracer: false: no span')
  t.equal(sum((await collect(reader)).get('traffik.decisions'), { 'traffik.throttle.uid': 'ns' }), 1)

  const noMetrics = await appWith(t, { telemetry: { meter: false } }, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'nm', rate: '5/min' } } }, async () => 'ok')
  })
  await noMetrics.inject('/')
  t.equal(spans.getFinishedSpans().length, 2, 'meter: false: spans only')
  t.equal(sum((await collect(reader)).get('traffik.decisions'), { 'traffik.throttle.uid': 'nm' }), 0)
})

t.test('Prometheus: a real scrape of /metrics through the OpenTelemetry Prometheus exporter', async (t) => {
  const exporter = new PrometheusExporter({ preventServerStart: true })
  const meterProvider = new MeterProvider({ readers: [exporter] })
  const app = await appWith(t, { telemetry: { meter: meterProvider.getMeter('fastify-traffik'), tracer: false } }, (app) => {
    app.get('/search', { config: { rateLimit: { uid: 'search', rate: '2/min' } } }, async () => ({ hits: [] }))
    app.get('/metrics', { config: { rateLimit: false } }, (request, reply) => {
      reply.hijack()
      exporter.getMetricsRequestHandler(request.raw, reply.raw)
    })
  })
  t.teardown(async () => { await meterProvider.shutdown() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  for (let i = 0; i < 3; i++) await fetch(`http://127.0.0.1:${address.port}/search`)
  const scrape = await (await fetch(`http://127.0.0.1:${address.port}/metrics`)).text()
  t.comment(scrape.split('\n').filter((l) => l.startsWith('traffik_') || l.startsWith('# TYPE traffik_')).join('\n'))
  t.match(scrape, /# TYPE traffik_decisions_total counter/)
  t.match(scrape, /traffik_decisions_total\{[^}]*traffik_throttle_uid="search"[^}]*traffik_outcome="allowed"[^}]*\} 2/)
  t.match(scrape, /traffik_decisions_total\{[^}]*traffik_outcome="throttled"[^}]*\} 1/)
  t.match(scrape, /traffik_near_limit_total\{[^}]*\} 1/)
  t.match(scrape, /# TYPE traffik_backend_duration histogram/)
  t.match(scrape, /traffik_backend_duration_count\{[^}]*traffik_backend="InMemoryBackend"[^}]*\} 3/)
})

t.test('bad telemetry options fail at registration', async (t) => {
  const cases: unknown[] = ['yes', null, [], { meter: {} }, { tracer: 1 }, { nearLimitRatio: 0 }, { nearLimitRatio: 1.5 }, { keyAttribute: 'no' }, { ratio: 0.8 }]
  for (const telemetry of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(traffik, { telemetry: telemetry as never }); await app.ready() }, { code: 'TRAFFIK_ERR_INVALID_OPTION' }, JSON.stringify(telemetry))
    await app.close().catch(() => {})
  }
  const off = Fastify()
  await off.register(traffik, { telemetry: false })
  await off.close()
  t.pass('false is no telemetry')
})
