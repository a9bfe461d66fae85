/**
 * `runBackendConformance`: registers the backend conformance suite with any test runner whose
 * `test(name, fn)` fails a case when `fn` rejects (tap, node:test, ...). Assertions use
 * `node:assert`, so nothing here depends on a runner.
 */
import { invalidOption } from '../errors.js'
import { deadlineCases } from './deadline-cases.js'
import { errorCases } from './error-cases.js'
import { evaluateCases } from './evaluate-cases.js'
import {
  builtInStrategies, CaseContext, type BackendConformanceOptions, type ConformanceCase, type ResolvedOptions
} from './harness.js'
import { lifecycleCases } from './lifecycle-cases.js'
import { lockCases } from './lock-cases.js'
import { primitiveCases } from './primitive-cases.js'
import { ttlCases } from './ttl-cases.js'

/** Every case of the suite, in the order they run (the deadline cases only with the `hang` option). */
export const conformanceCases: readonly ConformanceCase[] = [
  ...lifecycleCases, ...primitiveCases, ...ttlCases, ...evaluateCases, ...lockCases, ...errorCases, ...deadlineCases
]

/**
 * Registers one test per conformance case. Each case builds its own backends on fresh namespaces
 * and resets and closes them at its end.
 *
 * ```ts
 * import t from 'tap'
 * import { runBackendConformance } from 'fastify-traffik/testing'
 * runBackendConformance({ test: t.test.bind(t), makeBackend: (namespace) => new MyBackend(url, { namespace }), makeFailingBackend: () => new MyBackend(deadUrl) })
 * ```
 * Returns the names of the registered cases.
 */
export function runBackendConformance (options: BackendConformanceOptions): string[] {
  if (options === null || typeof options !== 'object') invalidOption('options', 'an object', options)
  const { test, makeBackend, makeFailingBackend, hang, ttlResolutionMs = 0, concurrency = 50, strategies, name, namespacePrefix = 'conformance' } = options
  if (typeof test !== 'function') invalidOption('test', "the test runner's test(name, fn) function", test)
  if (typeof makeBackend !== 'function') invalidOption('makeBackend', 'a function (namespace) => backend', makeBackend)
  if (makeFailingBackend !== null && typeof makeFailingBackend !== 'function') {
    invalidOption('makeFailingBackend', 'a function () => backend whose driver fails, or null for a backend that cannot fail', makeFailingBackend)
  }
  if (hang !== undefined && (hang === null || typeof hang.makeBackend !== 'function' || typeof hang.freeze !== 'function' || typeof hang.thaw !== 'function')) {
    invalidOption('hang', 'an object { makeBackend, freeze, thaw }', hang)
  }
  if (!Number.isFinite(ttlResolutionMs) || ttlResolutionMs < 0) invalidOption('ttlResolutionMs', 'a number of ms >= 0', ttlResolutionMs)
  if (!Number.isSafeInteger(concurrency) || concurrency < 2) invalidOption('concurrency', 'an integer >= 2', concurrency)
  const resolved: ResolvedOptions = {
    hang,
    makeBackend,
    makeFailingBackend,
    ttlResolutionMs,
    concurrency,
    strategies: strategies ?? builtInStrategies(),
    namespacePrefix
  }
  const registered: string[] = []
  for (const conformanceCase of conformanceCases) {
    if (hang === undefined && deadlineCases.includes(conformanceCase)) continue
    const title = name === undefined ? conformanceCase.name : `${name}: ${conformanceCase.name}`
    registered.push(title)
    test(title, async () => {
      const context = new CaseContext(resolved)
      try {
        await conformanceCase.run(context)
      } finally {
        await context.dispose()
      }
    })
  }
  return registered
}
