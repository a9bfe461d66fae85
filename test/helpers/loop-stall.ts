/**
 * On a loaded machine the test process itself can stall, and a stall delays every timer by its
 * length. A time bound for a backend's answer adds the worst event-loop delay since the
 * measurement began (`reset()` right before each one), so it measures the backend, not the host.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'

export interface StallMeter {
  /** Starts a measurement: forgets the stalls seen so far. */
  reset(): void
  /** The worst stall since `reset()`, in ms. */
  stallMs(): number
}

/** Measures this process' event-loop stalls from now until the test file ends. */
export function stallMeter (): StallMeter {
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  return {
    reset: () => { histogram.reset() },
    stallMs: () => histogram.max / 1e6
  }
}
