/**
 * Named locks: exclusive, bounded by their TTL (a crashed holder frees them), released only by
 * their holder (token-checked), non-blocking and blocking-with-timeout acquisition.
 */
import assert from 'node:assert/strict'
import { sleep } from '../clock.js'
import type { ConformanceCase } from './harness.js'

export const lockCases: readonly ConformanceCase[] = [
  {
    name: 'locks are exclusive and non-blocking acquire answers at once',
    async run (context) {
      const backend = await context.backend()
      const first = backend.getLock('l:{exclusive}', 30_000)
      const second = backend.getLock('l:{exclusive}', 30_000)
      assert.equal(await first.acquire({ blocking: false }), true, 'a free lock is taken')
      assert.equal(await second.acquire({ blocking: false }), false, 'a held lock is refused')
      assert.equal(await backend.getLock('l:{other}', 30_000).acquire({ blocking: false }), true, 'locks of other names are independent')
      await first.release()
      assert.equal(await second.acquire({ blocking: false }), true, 'a released lock is free again')
      await second.release()
      await second.release() // releasing twice is harmless
    }
  },
  {
    name: 'a blocking acquire waits for the release, and gives up at its timeout',
    async run (context) {
      const backend = await context.backend()
      const holder = backend.getLock('l:{blocking}', 30_000)
      assert.equal(await holder.acquire({ blocking: false }), true)
      const started = Date.now()
      assert.equal(await backend.getLock('l:{blocking}', 30_000).acquire({ blocking: true, timeoutMs: 300 }), false, 'gives up while the lock is held')
      assert.ok(Date.now() - started >= 250, `waited ${Date.now() - started} ms, at least about its 300 ms timeout`)
      const waiter = backend.getLock('l:{blocking}', 30_000).acquire({ blocking: true, timeoutMs: 20_000 })
      setTimeout(() => { holder.release().catch(() => {}) }, 100)
      assert.equal(await waiter, true, 'takes the lock once the holder releases it')
    }
  },
  {
    name: 'locks are bounded by their TTL and released only by their holder',
    async run (context) {
      const backend = await context.backend()
      const ttl = 300
      const crashed = backend.getLock('l:{ttl}', ttl)
      assert.equal(await crashed.acquire({ blocking: false }), true)
      await sleep(ttl + context.options.ttlResolutionMs + 200)
      const next = backend.getLock('l:{ttl}', 30_000)
      assert.equal(await next.acquire({ blocking: false }), true, 'a lock whose holder never released it is free after its TTL')
      await crashed.release()
      assert.equal(await backend.getLock('l:{ttl}', 30_000).acquire({ blocking: false }), false, "the expired holder's release did not free the new holder's lock")
      await next.release()
      assert.equal(await backend.getLock('l:{ttl}', 30_000).acquire({ blocking: false }), true)
    }
  },
  {
    name: 'concurrent holders never overlap',
    async run (context) {
      const backend = await context.backend()
      let inside = 0
      let overlaps = 0
      let entered = 0
      const worker = async (): Promise<void> => {
        const lock = backend.getLock('l:{mutex}', 30_000)
        assert.equal(await lock.acquire({ blocking: true, timeoutMs: 30_000 }), true)
        inside++
        entered++
        if (inside > 1) overlaps++
        await sleep(1)
        inside--
        await lock.release()
      }
      await Promise.all(Array.from({ length: 20 }, worker))
      assert.equal(entered, 20)
      assert.equal(overlaps, 0, 'no two holders were inside at once')
    }
  }
]
