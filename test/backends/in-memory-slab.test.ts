/**
 * The slab under InMemoryBackend, on its own: recency order, eviction at maxKeys (protected keys
 * skipped, held slots never taken), expiry, growth of the columns and reuse of freed slots.
 */
import t from 'tap'
import { InMemorySlab, NO_SLOT } from '../../lib/backends/in-memory-slab.js'

const NOW = 1_000

/** Stores each key with a one-number state and a long life; returns their slots. */
function fill (slab: InMemorySlab, keys: readonly string[], expiresAt = NOW + 60_000): number[] {
  return keys.map((key) => {
    slab.store(key, slab.lookup(key, NOW), [1], expiresAt, NOW)
    return slab.lookup(key, NOW)
  })
}

t.test('keys are kept from the least to the most recently used; a lookup makes a key the most recent', async (t) => {
  const slab = new InMemorySlab(10, false)
  fill(slab, ['a', 'b', 'c'])
  t.same(slab.keysByRecency(), ['a', 'b', 'c'])
  slab.lookup('a', NOW)
  t.same(slab.keysByRecency(), ['b', 'c', 'a'], 'a is the most recent after its lookup')
  slab.lookup('c', NOW)
  slab.lookup('c', NOW)
  t.same(slab.keysByRecency(), ['b', 'a', 'c'], 'looking up the most recent key twice changes nothing')
  slab.remove(slab.lookup('a', NOW))
  t.same(slab.keysByRecency(), ['b', 'c'], 'a removed key leaves the order of the others')
  t.equal(slab.lookup('missing', NOW), NO_SLOT)
})

t.test('at maxKeys the least recently used key is evicted, and nothing below it', async (t) => {
  const slab = new InMemorySlab(3, false)
  fill(slab, ['a', 'b', 'c'])
  t.equal(slab.size, 3, 'nothing evicted below the bound')
  slab.lookup('a', NOW)
  fill(slab, ['d'])
  t.equal(slab.size, 3)
  t.same(slab.keysByRecency(), ['c', 'a', 'd'], 'b, the least recently used, went')
  t.equal(slab.lookup('b', NOW), NO_SLOT)
})

t.test('protectLimited: eviction skips keys being limited, and takes the oldest when all are', async (t) => {
  const slab = new InMemorySlab(3, true)
  const [a, b] = fill(slab, ['a', 'b', 'c'])
  slab.markLimited(a!)
  slab.markLimited(b!)
  fill(slab, ['d'])
  t.same(slab.keysByRecency(), ['a', 'b', 'd'], 'c, the oldest key not limited, went')

  const all = new InMemorySlab(2, true)
  for (const slot of fill(all, ['x', 'y'])) all.markLimited(slot)
  fill(all, ['z'])
  t.same(all.keysByRecency(), ['y', 'z'], 'every key limited: the least recently used went anyway')

  const expired = new InMemorySlab(2, true)
  const [old] = fill(expired, ['old'], NOW + 10)
  expired.markLimited(old!)
  fill(expired, ['live'])
  expired.allocate('new', NOW + 10)
  t.same(expired.keysByRecency(), ['live', 'new'], 'a limited key that expired is not protected')

  const written = new InMemorySlab(2, true)
  const [p] = fill(written, ['p', 'q'])
  written.markLimited(p!)
  written.write(p!, [2], NOW + 60_000)
  fill(written, ['r'])
  t.same(written.keysByRecency(), ['q', 'r'], 'a write clears the mark (p was the oldest and went)')
})

t.test('allocation never evicts a held slot; with only held slots left, the slab exceeds maxKeys and comes back', async (t) => {
  const slab = new InMemorySlab(2, false)
  const [a] = fill(slab, ['a', 'b'])
  const held = [a!]
  const slot = slab.allocate('c', NOW, held)
  t.not(slot, a, 'the held slot was not taken')
  t.same(slab.keysByRecency(), ['a', 'c'], 'b went instead, although a was older')
  held.push(slot)
  slab.allocate('d', NOW, held)
  t.equal(slab.size, 3, 'every slot held: one key over the bound')
  t.same(slab.keysByRecency(), ['a', 'c', 'd'])
  fill(slab, ['e'])
  t.equal(slab.size, 2, 'the next allocation brings it back to the bound')
  t.same(slab.keysByRecency(), ['d', 'e'])
})

t.test('expired keys read as absent, are dropped on lookup, and swept', async (t) => {
  const slab = new InMemorySlab(10, true)
  fill(slab, ['short'], NOW + 100)
  fill(slab, ['long'], NOW + 10_000)
  t.not(slab.lookup('short', NOW + 99), NO_SLOT, 'alive just before its expiry')
  t.equal(slab.lookup('short', NOW + 100), NO_SLOT, 'gone at its expiry')
  t.equal(slab.size, 1, 'and dropped by the lookup')
  fill(slab, ['a', 'b'], NOW + 100)
  t.equal(slab.sweep(NOW + 100), 2, 'the sweep drops what expired')
  t.same(slab.keysByRecency(), ['long'])
  const slot = slab.lookup('long', NOW)
  slab.setExpiry(slot, NOW + 50)
  t.equal(slab.expiresAt(slot), NOW + 50)
  t.equal(slab.lookup('long', NOW + 50), NO_SLOT, 'setExpiry moves the expiry')
})

t.test('values: up to three numbers inline, longer states and strings boxed', async (t) => {
  const slab = new InMemorySlab(10, true)
  const values: Array<[string, number[] | string, string]> = [
    ['none', [], ''], ['one', [7], '7'], ['two', [1.5, -2], '1.5,-2'], ['three', [1, 2, 3], '1,2,3'],
    ['four', [1, 2, 3, 4], '1,2,3,4'], ['text', 'token', 'token'], ['number text', '42', '42']
  ]
  for (const [key, value] of values) slab.store(key, NO_SLOT, value, Infinity, NOW)
  for (const [key, value, text] of values) {
    const slot = slab.lookup(key, NOW)
    t.equal(slab.readText(slot), text, `${key} reads back as text`)
    if (typeof value !== 'string') t.same(slab.read(slot), value, `${key} reads back as numbers`)
  }
  t.same(slab.read(slab.lookup('number text', NOW)), [42], 'a numeric string reads as its number')
  t.same(slab.read(slab.lookup('text', NOW)), [], 'other strings read as no numbers')
  const slot = slab.lookup('four', NOW)
  slab.write(slot, [9], Infinity)
  t.same(slab.read(slot), [9], 'a boxed slot written with a short state goes inline')
  const state = [1, 2, 3, 4]
  slab.write(slot, state, Infinity)
  state[0] = 99
  t.same(slab.read(slot), [1, 2, 3, 4], 'a boxed state is a copy')
  slab.store('three', slab.lookup('three', NOW), null, Infinity, NOW)
  t.equal(slab.lookup('three', NOW), NO_SLOT, 'storing null deletes')
})

t.test('the columns grow by doubling up to maxKeys, and freed slots are reused before growing', async (t) => {
  const slab = new InMemorySlab(5000, false)
  t.equal(slab.capacity, 1024, 'starts at 1024 slots (or maxKeys when smaller)')
  t.equal(new InMemorySlab(3, false).capacity, 3)
  const keys = Array.from({ length: 1025 }, (_, i) => `k${i}`)
  fill(slab, keys)
  t.equal(slab.capacity, 2048, 'doubled when full')
  t.equal(slab.readText(slab.lookup('k0', NOW)), '1', 'values kept across the growth')
  t.equal(slab.readText(slab.lookup('k1024', NOW)), '1')
  fill(slab, Array.from({ length: 3000 }, (_, i) => `more${i}`))
  t.equal(slab.capacity, 4096)
  fill(slab, Array.from({ length: 1000 }, (_, i) => `most${i}`))
  t.equal(slab.capacity, 5000, 'never past maxKeys')
  t.equal(slab.size, 5000)
  t.equal(slab.lookup('k1', NOW), NO_SLOT, 'the least recently used keys made room')
  t.not(slab.lookup('k0', NOW), NO_SLOT, 'k0, looked up after k1, is still there')

  const reuse = new InMemorySlab(10, false)
  const slots = fill(reuse, ['a', 'b', 'c'])
  reuse.remove(slots[1]!)
  t.equal(reuse.allocate('d', NOW), slots[1], 'the freed slot is handed out again')
  t.equal(reuse.removePrefix('a'), 1)
  t.equal(reuse.allocate('e', NOW), slots[0], 'slots freed by removePrefix too')
  reuse.clear()
  t.equal(reuse.size, 0)
  t.same(reuse.keysByRecency(), [])
  t.equal(reuse.allocate('f', NOW), 0, 'clear starts over from the first slot')
})
