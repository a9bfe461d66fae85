/**
 * Metrics and spans of decisions, through OpenTelemetry. The instruments are described by the
 * few methods we call (structural types), so `@opentelemetry/api` stays an optional peer: the
 * plugin loads it only when asked, or the user hands in a meter and a tracer of their own.
 * Nothing here runs unless telemetry is on: a limit without it makes one field check.
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode, EvaluateOp } from '../../types/backend.js'
import { InMemoryBackend } from '../backends/in-memory-backend.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import type { ThrottleRequest, ThrottleView } from './contracts.js'
import { isPromiseLike } from './maybe-promise.js'

/** Attribute values as OpenTelemetry takes them. */
export type TelemetryAttributes = Record<string, string | number | boolean | string[]>

/** What we use of an OpenTelemetry `Meter` (`metrics.getMeter(...)`). */
export interface MeterLike {
  createCounter(name: string, options?: { description?: string, unit?: string }): { add(value: number, attributes?: TelemetryAttributes): void }
  createHistogram(name: string, options?: { description?: string, unit?: string, advice?: { explicitBucketBoundaries?: number[] } }): { record(value: number, attributes?: TelemetryAttributes): void }
}

/** What we use of an OpenTelemetry `Span`. */
export interface SpanLike {
  setAttribute(key: string, value: string | number | boolean | string[]): unknown
  setStatus(status: { code: number, message?: string }): unknown
  recordException(exception: Error): unknown
  end(): void
}

/** What we use of an OpenTelemetry `Tracer` (`trace.getTracer(...)`): a span, child of the active context. */
export interface TracerLike {
  startSpan(name: string, options?: { kind?: number, attributes?: TelemetryAttributes }): SpanLike
}

/** What a decision counts as in `traffik.decisions`. */
export type DecisionOutcome = 'allowed' | 'throttled' | 'shadow_throttled' | 'error' | 'exempt'

/** Telemetry settings, resolved by the plugin. */
export interface TelemetrySettings {
  readonly meter: MeterLike | undefined
  readonly tracer: TracerLike | undefined
  /** An admitted decision that leaves at most (1 − ratio) of the limit counts as near the limit. */
  readonly nearLimitRatio: number
  /** Adds `traffik.key` (the storage key, with the client identifier) to metrics and spans. */
  readonly keyAttribute: boolean
}

/** OpenTelemetry's `SpanKind.INTERNAL` / `SpanKind.CLIENT` and `SpanStatusCode.ERROR`. */
const SPAN_INTERNAL = 0
const SPAN_CLIENT = 2
const STATUS_ERROR = 2

/** Backend latency buckets in seconds: 50 µs (in memory) to 2.5 s (past any deadline). */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

function routeOf (request: ThrottleRequest): string | undefined {
  return (request as { routeOptions?: { url?: string } }).routeOptions?.url
}

export class Telemetry {
  readonly #settings: TelemetrySettings
  readonly #decisions: ReturnType<MeterLike['createCounter']> | undefined
  readonly #nearLimit: ReturnType<MeterLike['createCounter']> | undefined
  readonly #errors: ReturnType<MeterLike['createCounter']> | undefined
  readonly #latency: ReturnType<MeterLike['createHistogram']> | undefined

  constructor (settings: TelemetrySettings) {
    this.#settings = settings
    const meter = settings.meter
    if (meter !== undefined) {
      this.#decisions = meter.createCounter('traffik.decisions', { description: 'Decisions of each limit, by outcome', unit: '{decision}' })
      this.#nearLimit = meter.createCounter('traffik.near_limit', { description: 'Admitted decisions that left at most (1 - nearLimitRatio) of the limit', unit: '{decision}' })
      this.#errors = meter.createCounter('traffik.backend.errors', { description: 'Failed backend calls (errors and timeouts), before the error policy answered', unit: '{error}' })
      this.#latency = meter.createHistogram('traffik.backend.duration', {
        description: 'Duration of backend decision calls', unit: 's', advice: { explicitBucketBoundaries: LATENCY_BUCKETS }
      })
    }
  }

  #attributes (view: ThrottleView, backend: ThrottleBackend | undefined, request: ThrottleRequest, key: string | undefined): TelemetryAttributes {
    const attributes: TelemetryAttributes = { 'traffik.throttle.uid': view.uid, 'traffik.strategy': view.strategy.name }
    if (backend !== undefined) attributes['traffik.backend'] = backend.name
    const route = routeOf(request)
    if (route !== undefined) attributes['http.route'] = route
    if (this.#settings.keyAttribute && key !== undefined) attributes['traffik.key'] = key
    return attributes
  }

  /** Counts one limit's decision of a request (`'hit'` mode), and whether it came near the limit. */
  decided (view: ThrottleView, backend: ThrottleBackend | undefined, request: ThrottleRequest, key: string | undefined, decision: Decision | undefined, outcome: DecisionOutcome): void {
    if (this.#decisions === undefined) return
    const attributes = this.#attributes(view, backend, request, key)
    if (decision !== undefined && outcome === 'allowed' && Number.isFinite(decision.limit) && decision.limit > 0 &&
      decision.limit - decision.remaining >= this.#settings.nearLimitRatio * decision.limit) {
      this.#nearLimit!.add(1, attributes)
    }
    // A new object: the SDK may keep the one it was given.
    this.#decisions.add(1, { ...attributes, 'traffik.outcome': outcome })
  }

  /** Counts a failed backend call of one limit. */
  backendFailed (view: ThrottleView, backend: ThrottleBackend, request: ThrottleRequest, key: string, error: Error): void {
    if (this.#errors === undefined) return
    const attributes = this.#attributes(view, backend, request, key)
    attributes['error.type'] = (error as { code?: string }).code ?? error.name
    this.#errors.add(1, attributes)
  }

  /**
   * Runs one backend call inside a span and times it. Synchronous when the call is (in-memory).
   */
  call (view: ThrottleView, backend: ThrottleBackend, ops: readonly EvaluateOp[], mode: EvaluateMode, run: () => Decision[] | Promise<Decision[]>): Decision[] | Promise<Decision[]> {
    const attributes: TelemetryAttributes = { 'traffik.backend': backend.name, 'traffik.operation': mode }
    const tracer = this.#settings.tracer
    let span: SpanLike | undefined
    if (tracer !== undefined) {
      const spanAttributes: TelemetryAttributes = { ...attributes, 'traffik.throttle.uid': view.uid, 'traffik.limits': ops.length }
      if (this.#settings.keyAttribute) spanAttributes['traffik.key'] = ops.map((op) => op.key)
      span = tracer.startSpan('traffik.evaluate', { kind: backend instanceof InMemoryBackend ? SPAN_INTERNAL : SPAN_CLIENT, attributes: spanAttributes })
    }
    const started = performance.now()
    const failed = (error: Error): never => {
      this.#finish(span, started, attributes, error)
      throw error
    }
    let result: Decision[] | Promise<Decision[]>
    try {
      result = run()
    } catch (error) {
      return failed(error as Error)
    }
    if (isPromiseLike<Decision[]>(result)) {
      return result.then((decisions) => { this.#finish(span, started, attributes, undefined, decisions); return decisions }, failed)
    }
    this.#finish(span, started, attributes, undefined, result)
    return result
  }

  #finish (span: SpanLike | undefined, started: number, attributes: TelemetryAttributes, error: Error | undefined, decisions?: Decision[]): void {
    if (error !== undefined) attributes['error.type'] = (error as { code?: string }).code ?? error.name
    this.#latency?.record((performance.now() - started) / 1000, attributes)
    if (span === undefined) return
    if (error !== undefined) {
      span.recordException(error)
      span.setStatus({ code: STATUS_ERROR, message: error.message })
    } else if (decisions !== undefined) {
      span.setAttribute('traffik.allowed', decisions.every((d) => d.allowed))
    }
    span.end()
  }
}
