/**
 * Times to live in milliseconds: every primitive that takes `ttlMs` makes the key disappear after
 * it (within the backend's declared resolution), keeps it until then, and `expire` moves it.
 * Real time with short TTLs: these cases wait about one second plus the declared resolution.
 */
import assert from 'node:assert/strict'
import { sleep } from '../clock.js'
import type { ConformanceCase } from './harness.js'

const SHORT_TTL_MS = 300
/** Long enough that a key given it is surely still there when the case looks. */
const LONG_TTL_MS = 60_000

export const ttlCases: readonly ConformanceCase[] = [
  {
    name: 'keys expire after ttlMs, and not before',
    async run (context) {
      const backend = await context.backend()
      await backend.set('t:{set}', 'v', SHORT_TTL_MS)
      assert.equal(await backend.incrementWithTtl('t:{incr}', 2, SHORT_TTL_MS), 2)
      await backend.multiSet([['t:{multi}', 'v']], SHORT_TTL_MS)
      await backend.set('t:{expire}', 'v')
      assert.equal(await backend.expire('t:{expire}', SHORT_TTL_MS), true, 'expire resolves true for a key that exists')
      assert.equal(await backend.expire('t:{nothing}', SHORT_TTL_MS), false, 'expire resolves false for a missing key')
      await backend.set('t:{kept}', 'v', SHORT_TTL_MS)
      assert.equal(await backend.expire('t:{kept}', LONG_TTL_MS), true)
      await backend.set('t:{forever}', 'v')
      await backend.set('t:{long}', 'v', LONG_TTL_MS)
      const short = ['t:{set}', 't:{incr}', 't:{multi}', 't:{expire}']
      assert.deepEqual(await backend.multiGet(short), ['v', '2', 'v', 'v'], 'present right after being written')

      await sleep(SHORT_TTL_MS + context.options.ttlResolutionMs + 200)
      assert.deepEqual(await backend.multiGet(short), [null, null, null, null], 'gone after their TTL')
      assert.equal(await backend.get('t:{kept}'), 'v', 'expire() extended the TTL')
      assert.equal(await backend.get('t:{forever}'), 'v', 'a key without TTL stays')
      assert.equal(await backend.get('t:{long}'), 'v', 'a key with a long TTL stays')
      assert.equal(await backend.increment('t:{incr}'), 1, 'an expired counter starts again at 0')
    }
  },
  {
    name: 'incrementWithTtl sets the TTL of a new key only',
    async run (context) {
      const backend = await context.backend()
      const ttl = SHORT_TTL_MS + context.options.ttlResolutionMs
      assert.equal(await backend.incrementWithTtl('t:{window}', 1, ttl), 1)
      await sleep(ttl / 2)
      // A later increment must not push the expiry out, or a window would never end under traffic.
      assert.equal(await backend.incrementWithTtl('t:{window}', 1, ttl), 2)
      await sleep(ttl / 2 + context.options.ttlResolutionMs + 200)
      assert.equal(await backend.get('t:{window}'), null, 'expired on the TTL of its first increment')
      assert.equal(await backend.incrementWithTtl('t:{window}', 5, ttl), 5, 'a new window starts from the amount')
    }
  }
]
