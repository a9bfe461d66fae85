/**
 * One row of the chaos suite's results table: written by the chaos tests (one JSON line per
 * scenario, to the file named by TRAFFIK_CHAOS_RESULTS) and read by `npm run test:chaos`.
 */
export interface ScenarioResult {
  backend: string
  scenario: string
  /** Per route: counts of each status over the whole run. */
  answers: Record<string, Record<string, number>>
  /** Per route: counts during the fault. */
  duringFault: Record<string, Record<string, number>>
  /** Slowest answer seen by the load generator. */
  maxLatencyMs: number
  /** Slowest answer measured in the app process. */
  maxServerMs: number
  /** ms from the server being back to the first decision it made again (undefined: no outage of the primary path). */
  recoveryMs: number | undefined
  notes?: string
}
