/**
 * Adaptive limits: a throttle's effective limit shrinks while the server is saturated and
 * recovers as the pressure clears. Pressure, in [0, 1], comes from this process's event loop
 * (utilisation and delay, sampled with perf_hooks and smoothed) or from a function of the
 * user's (a pool's queue, a downstream's latency). Lower priority classes shed first: a class
 * with a share below 1 drops to nothing at full pressure, the top class to `minFactor`.
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks'
import { invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import type { AdaptiveOptions } from './option-types.js'

/** A validated `adaptive`: the limit the pressure now leaves a request's share. */
export interface CompiledAdaptive {
  limitFor: (limit: number, share: number) => number
}

const SAMPLE_MS = 250
/** Weight of the newest sample: smooth enough to ignore one slow tick, quick enough to recover within a few seconds. */
const SMOOTHING = 0.3

/** One sampler per process, shared by every adaptive throttle. */
class EventLoopSampler {
  utilization = 0
  delayMs = 0
  readonly #histogram: IntervalHistogram
  #last: EventLoopUtilization

  constructor () {
    this.#histogram = monitorEventLoopDelay({ resolution: 10 })
    this.#histogram.enable()
    this.#last = performance.eventLoopUtilization()
    setInterval(() => { this.#sample() }, SAMPLE_MS).unref()
  }

  #sample (): void {
    const now = performance.eventLoopUtilization()
    const utilization = performance.eventLoopUtilization(now, this.#last).utilization
    this.#last = now
    // The histogram reads in ns; with no sample in the interval it reports NaN-like zeros.
    const delay = this.#histogram.count > 0 ? this.#histogram.percentile(99) / 1e6 : 0
    this.#histogram.reset()
    this.utilization += SMOOTHING * (utilization - this.utilization)
    this.delayMs += SMOOTHING * (delay - this.delayMs)
  }
}

let sampler: EventLoopSampler | undefined

function ramp (value: number, [from, to]: readonly [number, number]): number {
  if (value <= from) return 0
  if (value >= to) return 1
  return (value - from) / (to - from)
}

function range (name: string, value: unknown, fallback: [number, number], max: number): [number, number] {
  if (value === undefined) return fallback
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => typeof v === 'number' && v >= 0 && v <= max) || !(value[0] < value[1])) {
    invalidOption(name, `[from, to] with 0 <= from < to <= ${max}`, value)
  }
  return [value[0], value[1]]
}

export function compileAdaptive (adaptive: unknown): CompiledAdaptive {
  const options = adaptive === true ? {} : adaptive
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    invalidOption('adaptive', "true or { signal?: 'event-loop' | () => pressure, minFactor?, utilization?, delayMs? }", adaptive)
  }
  rejectUnknownKeys('adaptive', options, ['signal', 'minFactor', 'utilization', 'delayMs'], 'adaptive')
  const { signal = 'event-loop', minFactor = 0.5 } = options as AdaptiveOptions
  if (typeof minFactor !== 'number' || !(minFactor >= 0 && minFactor <= 1)) invalidOption('adaptive.minFactor', 'a number in [0, 1]', minFactor)
  let pressure: () => number
  if (signal === 'event-loop') {
    const utilization = range('adaptive.utilization', (options as AdaptiveOptions).utilization, [0.8, 0.98], 1)
    const delayMs = range('adaptive.delayMs', (options as AdaptiveOptions).delayMs, [50, 500], 60_000)
    sampler ??= new EventLoopSampler()
    const s = sampler
    pressure = () => Math.max(ramp(s.utilization, utilization), ramp(s.delayMs, delayMs))
  } else if (typeof signal === 'function') {
    if ((options as AdaptiveOptions).utilization !== undefined || (options as AdaptiveOptions).delayMs !== undefined) {
      invalidOption('adaptive.utilization', "only with signal: 'event-loop'", (options as AdaptiveOptions).utilization ?? (options as AdaptiveOptions).delayMs)
    }
    pressure = () => {
      const value = signal()
      // A signal that answers nonsense must not open or close the gate by accident: no pressure.
      return typeof value === 'number' && value > 0 ? Math.min(1, value) : 0
    }
  } else {
    return invalidOption('adaptive.signal', "'event-loop' or a function () => pressure in [0, 1]", signal)
  }
  return {
    limitFor: (limit, share) => {
      const p = pressure()
      if (p === 0) return share === 1 ? limit : Math.floor(limit * share)
      return share < 1 ? Math.floor(limit * share * (1 - p)) : Math.floor(limit * (1 - p * (1 - minFactor)))
    }
  }
}
