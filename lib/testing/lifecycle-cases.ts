/**
 * Lifecycle and housekeeping: idempotent `initialize` and `close`, `ready()`, `healthCheck()`,
 * `reset()` confined to the backend's namespace, `clearPrefix()` confined to its prefix.
 */
import assert from 'node:assert/strict'
import { FixedWindow } from '../strategies/index.js'
import { LONG_WINDOW_MS, type ConformanceCase } from './harness.js'

const strategy = new FixedWindow()

export const lifecycleCases: readonly ConformanceCase[] = [
  {
    name: 'initialize is idempotent; ready() and healthCheck() follow the lifecycle; close is idempotent',
    async run (context) {
      const backend = context.track(await context.options.makeBackend(context.namespace()))
      assert.equal(typeof backend.persistent, 'boolean', 'persistent is declared')
      assert.ok(Number.isFinite(backend.timeoutMs) && backend.timeoutMs >= 0, 'timeoutMs is a number of ms')
      await Promise.all([backend.initialize(), backend.initialize()])
      await backend.initialize()
      assert.equal(backend.initialized, true)
      assert.equal(await backend.ready(), true, 'ready once initialized')
      const health = await backend.healthCheck()
      assert.equal(health.healthy, true, `healthy (${health.error?.message ?? ''})`)
      assert.ok(health.latencyMs >= 0, 'reports its latency')
      await backend.reset()
      await backend.close()
      await backend.close()
      assert.equal(backend.closed, true)
      assert.equal(await backend.ready(), false, 'not ready once closed')
    }
  },
  {
    name: 'a closed backend refuses work with TRAFFIK_ERR_BACKEND_CLOSED',
    async run (context) {
      const backend = await context.backend()
      await backend.close()
      const op = { strategy, key: 'z:{closed}', limit: 5, windowMs: LONG_WINDOW_MS, cost: 1 }
      await assert.rejects(Promise.resolve().then(async () => await backend.evaluate([op], 'hit')), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' }, 'evaluate')
      await assert.rejects(Promise.resolve().then(async () => await backend.get('z:{closed}')), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' }, 'get')
      const health = await backend.healthCheck()
      assert.equal(health.healthy, false, 'a closed backend is not healthy')
    }
  },
  {
    name: 'reset clears its own namespace and nothing else',
    async run (context) {
      const mine = await context.backend()
      const theirs = await context.backend()
      const op = { strategy, key: 'r:{client}', limit: 2, windowMs: LONG_WINDOW_MS, cost: 2 }
      for (const backend of [mine, theirs]) {
        await backend.set('r:{key}', backend === mine ? 'mine' : 'theirs')
        await backend.increment('r:{count}', 7)
        assert.equal((await backend.evaluate([op], 'hit'))[0]!.allowed, true)
      }
      assert.equal(await mine.get('r:{key}'), 'mine', 'the same logical key holds a different value per namespace')
      assert.equal(await theirs.get('r:{key}'), 'theirs')
      await mine.reset()
      assert.deepEqual(await mine.multiGet(['r:{key}', 'r:{count}']), [null, null], 'reset cleared the namespace')
      assert.equal((await mine.evaluate([op], 'hit'))[0]!.allowed, true, 'reset cleared strategy states')
      assert.deepEqual(await theirs.multiGet(['r:{key}', 'r:{count}']), ['theirs', '7'], 'another namespace is untouched')
      assert.equal((await theirs.evaluate([op], 'hit'))[0]!.allowed, false, "another namespace's states are untouched")
    }
  },
  {
    name: 'clearPrefix deletes its prefix only (or is declared unsupported)',
    async run (context) {
      const backend = await context.backend()
      const neighbour = await context.backend()
      await backend.multiSet([['GET:/a:{1}', 'x'], ['GET:/a:{2}', 'y'], ['GET:/ab:{1}', 'z'], ['POST:/a:{1}', 'w']])
      await neighbour.set('GET:/a:{1}', 'n')
      let cleared: number
      try {
        cleared = await backend.clearPrefix('GET:/a:{')
      } catch (error) {
        assert.equal((error as { code?: string }).code, 'TRAFFIK_ERR_UNSUPPORTED', 'a backend that cannot clear by prefix says so with TRAFFIK_ERR_UNSUPPORTED')
        return
      }
      assert.ok(cleared === 2 || cleared === -1, `resolves how many keys it deleted, or -1 (got ${cleared})`)
      assert.deepEqual(await backend.multiGet(['GET:/a:{1}', 'GET:/a:{2}', 'GET:/ab:{1}', 'POST:/a:{1}']), [null, null, 'z', 'w'])
      assert.equal(await neighbour.get('GET:/a:{1}'), 'n', 'another namespace is untouched')
    }
  }
]
