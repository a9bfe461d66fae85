/**
 * The deadline: when the store stops answering, calls fail with TRAFFIK_ERR_BACKEND_TIMEOUT after
 * about `timeoutMs` (never hang), and the backend serves again on its own once the store is back.
 * Registered only when the author gives a way to freeze the store (`hang`).
 */
import assert from 'node:assert/strict'
import { sleep } from '../clock.js'
import { FixedWindow } from '../strategies/index.js'
import { LONG_WINDOW_MS, type ConformanceCase } from './harness.js'

interface CodedError extends Error {
  code?: string
}

export const deadlineCases: readonly ConformanceCase[] = [
  {
    name: 'a store that stops answering fails calls at the deadline, and the backend recovers when it is back',
    async run (context) {
      const hang = context.options.hang!
      const backend = context.track(await hang.makeBackend(context.namespace()))
      await backend.initialize()
      assert.ok(backend.timeoutMs > 0, 'the backend has a deadline (timeoutMs > 0)')
      const op = { strategy: new FixedWindow(), key: 'd:{client}', limit: 100, windowMs: LONG_WINDOW_MS, cost: 1 }
      assert.equal((await backend.evaluate([op], 'hit'))[0]!.allowed, true, 'serves while the store answers')
      await hang.freeze()
      try {
        const calls: Array<[string, () => Promise<unknown>]> = [
          ['evaluate', async () => await backend.evaluate([op], 'hit')],
          ['get', async () => await backend.get('d:{k}')]
        ]
        for (const [label, call] of calls) {
          const started = Date.now()
          const error = await call().then(() => undefined, (e: unknown) => e as CodedError)
          const elapsed = Date.now() - started
          assert.ok(error !== undefined, `${label} did not resolve while the store is frozen`)
          assert.equal(error.code, 'TRAFFIK_ERR_BACKEND_TIMEOUT', `${label} fails with TRAFFIK_ERR_BACKEND_TIMEOUT (got ${error.code}: ${error.message})`)
          assert.ok(elapsed >= backend.timeoutMs * 0.8, `${label} waited ${elapsed} ms, about its ${backend.timeoutMs} ms deadline`)
        }
        const health = await backend.healthCheck()
        assert.equal(health.healthy, false, 'healthCheck reports the frozen store')
      } finally {
        await hang.thaw()
      }
      // Recovery needs no restart: within a few seconds a call succeeds again.
      const deadline = Date.now() + 10_000
      let recovered = false
      while (!recovered && Date.now() < deadline) {
        recovered = await Promise.resolve().then(async () => await backend.evaluate([op], 'check')).then(() => true, () => false)
        if (!recovered) await sleep(100)
      }
      assert.ok(recovered, 'the backend serves again once the store answers')
    }
  }
]
