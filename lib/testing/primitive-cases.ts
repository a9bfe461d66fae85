/**
 * Storage primitives: strings and integer counters under logical keys (the backend adds its
 * namespace), multi-key reads and writes, and keys of every shape a throttle produces.
 */
import assert from 'node:assert/strict'
import type { ConformanceCase } from './harness.js'

export const primitiveCases: readonly ConformanceCase[] = [
  {
    name: 'get, set and delete strings',
    async run (context) {
      const backend = await context.backend()
      assert.equal(await backend.get('p:{missing}'), null, 'a missing key reads as null')
      await backend.set('p:{a}', 'first')
      assert.equal(await backend.get('p:{a}'), 'first')
      await backend.set('p:{a}', 'second', 60_000)
      assert.equal(await backend.get('p:{a}'), 'second', 'set overwrites')
      await backend.set('p:{empty}', '')
      assert.equal(await backend.get('p:{empty}'), '', 'the empty string is a value, not a missing key')
      assert.equal(await backend.delete('p:{a}'), true, 'delete resolves true for a key that existed')
      assert.equal(await backend.get('p:{a}'), null)
      assert.equal(await backend.delete('p:{a}'), false, 'delete resolves false for a missing key')
    }
  },
  {
    name: 'increment and decrement are integer counters starting at 0',
    async run (context) {
      const backend = await context.backend()
      assert.equal(await backend.increment('c:{n}'), 1, 'a missing key starts at 0')
      assert.equal(await backend.increment('c:{n}', 4), 5)
      assert.equal(await backend.decrement('c:{n}', 2), 3)
      assert.equal(await backend.decrement('c:{n}'), 2)
      assert.equal(await backend.get('c:{n}'), '2', 'a counter reads back as its decimal string')
      await backend.set('c:{m}', '40')
      assert.equal(await backend.increment('c:{m}', 2), 42, 'a numeric string set earlier counts on')
      assert.equal(await backend.incrementWithTtl('c:{t}', 3, 60_000), 3)
      assert.equal(await backend.incrementWithTtl('c:{t}', 3, 60_000), 6)
    }
  },
  {
    name: 'concurrent increments are atomic',
    async run (context) {
      const backend = await context.backend()
      const n = context.options.concurrency * 2
      const values = await Promise.all(Array.from({ length: n }, async () => await backend.increment('c:{hot}')))
      assert.equal(await backend.get('c:{hot}'), String(n), 'no increment is lost')
      assert.deepEqual([...values].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), 'every caller saw a distinct value')
      const withTtl = await Promise.all(Array.from({ length: n }, async () => await backend.incrementWithTtl('c:{hot-ttl}', 1, 60_000)))
      assert.equal(Math.max(...withTtl), n, 'no incrementWithTtl is lost')
    }
  },
  {
    name: 'multiGet and multiSet keep the order of keys',
    async run (context) {
      const backend = await context.backend()
      assert.deepEqual(await backend.multiGet([]), [])
      await backend.multiSet([['m:{1}', 'one'], ['m:{2}', 'two'], ['m:{3}', 'three']])
      assert.deepEqual(await backend.multiGet(['m:{3}', 'm:{missing}', 'm:{1}', 'm:{2}']), ['three', null, 'one', 'two'])
      await backend.multiSet([['m:{1}', 'uno']], 60_000)
      assert.deepEqual(await backend.multiGet(['m:{1}', 'm:{2}']), ['uno', 'two'], 'multiSet overwrites only what it names')
    }
  },
  {
    name: 'keys of every shape are stored apart and read back',
    async run (context) {
      const backend = await context.backend()
      const long = 'GET:/items/:id:{' + 'x'.repeat(400)
      const keys = [
        'GET:/items/:id:{1.2.3.4}', 'GET:/items/:id:{2001:db8::/64}', 'uid:{üñïçødé ☃}', 'uid:{with space}',
        'uid:{line\nbreak}', `${long}a}`, `${long}b}`, 'a:b:c', 'a:b'
      ]
      for (const [i, key] of keys.entries()) await backend.set(key, `v${i}`)
      for (const [i, key] of keys.entries()) assert.equal(await backend.get(key), `v${i}`, `key ${JSON.stringify(key.slice(0, 40))}`)
      assert.deepEqual(await backend.multiGet(keys), keys.map((_, i) => `v${i}`))
    }
  }
]
