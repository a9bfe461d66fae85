/**
 * `fastify-traffik/testing`: the backend conformance suite for authors of custom backends.
 * Runner-agnostic: pass your runner's `test(name, fn)`; assertions use `node:assert`.
 * Guide: docs/backends/custom.md.
 */
export { runBackendConformance, conformanceCases } from './conformance.js'
export { builtInStrategies, referenceDecisions, scriptOps, LONG_WINDOW_MS } from './harness.js'
export type { BackendConformanceOptions, ConformanceCase, HangControl, TestFunction, ScriptStep } from './harness.js'
