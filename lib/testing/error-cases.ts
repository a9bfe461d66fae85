/**
 * Failures: a driver error surfaces as `BackendError` (code `TRAFFIK_ERR_BACKEND*`) with the
 * driver's error as `cause`, never raw and never as a hang; `healthCheck()` reports instead of throwing.
 */
import assert from 'node:assert/strict'
import { ThrottleBackend } from '../backends/throttle-backend.js'
import { BackendError } from '../errors.js'
import { FixedWindow } from '../strategies/index.js'
import { LONG_WINDOW_MS, type ConformanceCase } from './harness.js'

interface CodedError extends Error {
  code?: string
}

/** Settles `call` and returns its error; fails when it resolved. */
async function failureOf (call: () => unknown, label: string): Promise<CodedError> {
  try {
    await call()
  } catch (error) {
    return error as CodedError
  }
  assert.fail(`${label} resolved, but the backend's driver fails`)
}

function assertBackendError (error: CodedError, label: string): void {
  assert.ok(error instanceof BackendError, `${label}: rejects with a BackendError, got ${error?.constructor?.name}: ${error?.message}`)
  assert.match(error.code ?? '', /^TRAFFIK_ERR_BACKEND/, `${label}: coded TRAFFIK_ERR_BACKEND*`)
  if (error.code === 'TRAFFIK_ERR_BACKEND') assert.ok(error.cause !== undefined, `${label}: keeps the driver's error as cause`)
}

export const errorCases: readonly ConformanceCase[] = [
  {
    name: 'driver failures surface as BackendError with cause, and healthCheck reports them',
    async run (context) {
      const make = context.options.makeFailingBackend
      if (make === null) {
        const probe = context.track(await context.options.makeBackend(context.namespace()))
        assert.equal((probe.constructor as typeof ThrottleBackend).driverError, null,
          'makeFailingBackend: null is only for backends that declare they cannot fail (static driverError = null)')
        return
      }
      const backend = context.track(await make())
      try {
        await backend.initialize()
      } catch (error) {
        assertBackendError(error as CodedError, 'initialize')
      }
      const op = { strategy: new FixedWindow(), key: 'x:{client}', limit: 5, windowMs: LONG_WINDOW_MS, cost: 1 }
      const calls: Array<[string, () => unknown]> = [
        ['evaluate', () => backend.evaluate([op], 'hit')],
        ['get', () => backend.get('x:{k}')],
        ['set', () => backend.set('x:{k}', 'v', 1000)],
        ['increment', () => backend.increment('x:{k}')],
        ['incrementWithTtl', () => backend.incrementWithTtl('x:{k}', 1, 1000)],
        ['multiGet', () => backend.multiGet(['x:{k}'])],
        ['delete', () => backend.delete('x:{k}')],
        ['reset', () => backend.reset()]
      ]
      let withCause = 0
      for (const [label, call] of calls) {
        const error = await failureOf(call, label)
        assertBackendError(error, label)
        if (error.cause !== undefined) withCause++
      }
      assert.ok(withCause > 0, "at least one failure carries the driver's error as cause (not only timeouts)")
      const health = await backend.healthCheck()
      assert.equal(health.healthy, false, 'healthCheck reports the failure')
      assert.ok(health.error instanceof Error, 'with the error')
    }
  },
  {
    name: 'a driver error on a live backend becomes BackendError with cause',
    async run (context) {
      const backend = await context.backend()
      await backend.set('x:{text}', 'not a number')
      let outcome: unknown
      try {
        outcome = await backend.increment('x:{text}')
      } catch (error) {
        assertBackendError(error as CodedError, 'increment of a non-integer value')
        assert.ok(!((error as CodedError).cause instanceof BackendError), 'the cause is the driver\'s own error')
        return
      }
      // Backends that store numbers themselves may define it; they must not answer garbage.
      assert.ok(Number.isSafeInteger(outcome), `increment of a non-integer value resolved ${String(outcome)}; it must reject with BackendError or resolve an integer`)
    }
  }
]
