/**
 * The plugin's `telemetry` option: validated at registration; `@opentelemetry/api` is loaded only
 * here, only when telemetry is on and the user did not hand in a meter and a tracer. Without it
 * installed, the package works as before and `telemetry: true` fails with a coded error.
 */
import { MissingDependencyError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { Telemetry, type MeterLike, type TracerLike } from '../throttle/telemetry.js'

/** OpenTelemetry metrics and spans (see docs/observability.md). */
export interface TelemetryOptions {
  /**
   * Where metrics go: an OpenTelemetry `Meter`, or `false` for no metrics.
   * @default `metrics.getMeter('fastify-traffik')` of `@opentelemetry/api` (the global meter provider)
   */
  meter?: MeterLike | false
  /**
   * Where spans go (one per backend call): an OpenTelemetry `Tracer`, or `false` for no spans.
   * @default `trace.getTracer('fastify-traffik')` of `@opentelemetry/api` (the global tracer provider)
   */
  tracer?: TracerLike | false
  /**
   * An admitted decision counts in `traffik.near_limit` when it leaves at most (1 − ratio) of the
   * limit (`limit − remaining ≥ ratio × limit`), like Envoy's near-limit statistic.
   * @default 0.8
   */
  nearLimitRatio?: number
  /**
   * Adds the storage key (`traffik.key`, which holds the client identifier) to metrics and spans.
   * Off by default: one series per client can exhaust a metrics backend.
   * @default false
   */
  keyAttribute?: boolean
}

const TELEMETRY_OPTIONS: readonly string[] = ['meter', 'tracer', 'nearLimitRatio', 'keyAttribute']

/** Validates `telemetry` (synchronously, with the other options). */
export function validateTelemetry (option: unknown): TelemetryOptions | undefined {
  if (option === undefined || option === false) return undefined
  if (option === true) return {}
  if (option === null || typeof option !== 'object' || Array.isArray(option)) {
    return invalidOption('telemetry', 'a boolean or { meter?, tracer?, nearLimitRatio?, keyAttribute? }', option)
  }
  rejectUnknownKeys('telemetry', option, TELEMETRY_OPTIONS, 'telemetry')
  const { meter, tracer, nearLimitRatio, keyAttribute } = option as TelemetryOptions
  if (meter !== undefined && meter !== false && (meter === null || typeof meter.createCounter !== 'function' || typeof meter.createHistogram !== 'function')) {
    invalidOption('telemetry.meter', 'an OpenTelemetry Meter or false', meter)
  }
  if (tracer !== undefined && tracer !== false && (tracer === null || typeof tracer.startSpan !== 'function')) {
    invalidOption('telemetry.tracer', 'an OpenTelemetry Tracer or false', tracer)
  }
  if (nearLimitRatio !== undefined && (typeof nearLimitRatio !== 'number' || !(nearLimitRatio > 0 && nearLimitRatio <= 1))) {
    invalidOption('telemetry.nearLimitRatio', 'a number in (0, 1]', nearLimitRatio)
  }
  if (keyAttribute !== undefined && typeof keyAttribute !== 'boolean') invalidOption('telemetry.keyAttribute', 'a boolean', keyAttribute)
  return option as TelemetryOptions
}

interface OpenTelemetryApi {
  metrics: { getMeter(name: string): MeterLike }
  trace: { getTracer(name: string): TracerLike }
}

/** Builds the registry's telemetry, loading `@opentelemetry/api` only for what was not handed in. */
export async function createTelemetry (options: TelemetryOptions | undefined): Promise<Telemetry | undefined> {
  if (options === undefined) return undefined
  let { meter, tracer } = options
  if (meter === undefined || tracer === undefined) {
    const api = await loadOpenTelemetry()
    meter ??= api.metrics.getMeter('fastify-traffik')
    tracer ??= api.trace.getTracer('fastify-traffik')
  }
  return new Telemetry({
    meter: meter === false ? undefined : meter,
    tracer: tracer === false ? undefined : tracer,
    nearLimitRatio: options.nearLimitRatio ?? 0.8,
    keyAttribute: options.keyAttribute ?? false
  })
}

/** The package name in a variable, so bundlers and type checks never require the optional peer. */
const OTEL_API = '@opentelemetry/api'

async function loadOpenTelemetry (): Promise<OpenTelemetryApi> {
  try {
    return await import(OTEL_API) as OpenTelemetryApi
  } catch (error) {
    throw new MissingDependencyError(OTEL_API, 'telemetry (or pass telemetry: { meter, tracer })', { cause: error })
  }
}
