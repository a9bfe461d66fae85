import t from 'tap'
import { FixedWindow, InMemoryBackend, ManualClock } from '../../lib/index.js'
import type { EvaluateOp } from '../../lib/backend.js'

const fixedWindow = new FixedWindow()
const op = (key: string, limit = 2, windowMs = 1000, cost = 1): EvaluateOp => ({ strategy: fixedWindow, key, limit, windowMs, cost })

t.test('primitives: get/set/delete with millisecond TTLs', async (t) => {
  const clock = new ManualClock(0)
  const backend = new InMemoryBackend({ clock })
  await backend.set('a', 'x', 250)
  t.equal(await backend.get('a'), 'x')
  clock.advance(249)
  t.equal(await backend.get('a'), 'x')
  clock.advance(1)
  t.equal(await backend.get('a'), null, 'expired at exactly 250 ms')
  await backend.set('b', 'y')
  t.equal(await backend.delete('b'), true)
  t.equal(await backend.delete('b'), false)
  t.equal(await backend.get('b'), null)
})

t.test('primitives: increment, decrement, incrementWithTtl, expire, multiGet, multiSet', async (t) => {
  const clock = new ManualClock(0)
  const backend = new InMemoryBackend({ clock })
  t.equal(await backend.increment('n'), 1)
  t.equal(await backend.increment('n', 4), 5)
  t.equal(await backend.decrement('n', 2), 3)
  t.equal(await backend.get('n'), '3')
  t.equal(await backend.incrementWithTtl('w', 2, 100), 2)
  t.equal(await backend.incrementWithTtl('w', 2, 100), 4, 'the TTL set by the first call is kept')
  clock.advance(100)
  t.equal(await backend.get('w'), null)
  t.equal(await backend.expire('n', 10), true)
  t.equal(await backend.expire('missing', 10), false)
  clock.advance(10)
  t.equal(await backend.get('n'), null)
  await backend.multiSet([['p', '1'], ['q', '2']], 50)
  t.same(await backend.multiGet(['p', 'q', 'r']), ['1', '2', null])
  await t.rejects(backend.set('bad', 'v', -1), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})

t.test('evaluate: hit charges only when every op is allowed; check never charges', async (t) => {
  const backend = new InMemoryBackend({ clock: new ManualClock(0) })
  const both = [op('a', 2), op('b', 1)]
  t.same(backend.evaluate(both, 'hit').map((d) => d.allowed), [true, true])
  t.same(backend.evaluate(both, 'hit').map((d) => d.allowed), [true, false], 'b is full')
  t.equal(await backend.get('a'), '0,1', 'a was not charged by the rejected pair')
  t.same(backend.evaluate([op('a', 2)], 'check').map((d) => d.remaining), [0])
  t.equal(await backend.get('a'), '0,1', 'check wrote nothing')
  t.same(backend.evaluate([op('a', 2)], 'refund').map((d) => d.remaining), [2])
  t.equal(await backend.get('a'), '0,0')
})

t.test('maxKeys bounds memory: the least recently used key is evicted, nothing before the bound', async (t) => {
  const backend = new InMemoryBackend({ maxKeys: 3, protectLimited: false, clock: new ManualClock(0) })
  for (const key of ['k1', 'k2', 'k3']) backend.evaluate([op(key)], 'hit')
  t.equal(backend.size, 3, 'nothing evicted below the bound')
  backend.evaluate([op('k1')], 'hit') // k1 becomes most recent; k2 is now the least recently used
  backend.evaluate([op('k4')], 'hit')
  t.equal(backend.size, 3)
  t.equal(await backend.get('k2'), null, 'k2 (LRU) evicted')
  t.equal(await backend.get('k1'), '0,2', 'k1 kept its count')
})

t.test('protectLimited: a flood of new keys does not free a client that is being limited', async (t) => {
  const backend = new InMemoryBackend({ maxKeys: 100, clock: new ManualClock(0) })
  backend.evaluate([op('attacker', 1, 60_000)], 'hit')
  t.equal(backend.evaluate([op('attacker', 1, 60_000)], 'hit')[0]!.allowed, false)
  for (let i = 0; i < 1000; i++) backend.evaluate([op(`flood-${i}`, 1, 60_000)], 'hit')
  t.equal(backend.size, 100, 'memory stays bounded')
  t.equal(backend.evaluate([op('attacker', 1, 60_000)], 'hit')[0]!.allowed, false, 'still limited')

  const unprotected = new InMemoryBackend({ maxKeys: 100, protectLimited: false, clock: new ManualClock(0) })
  unprotected.evaluate([op('attacker', 1, 60_000)], 'hit')
  unprotected.evaluate([op('attacker', 1, 60_000)], 'hit')
  for (let i = 0; i < 1000; i++) unprotected.evaluate([op(`flood-${i}`, 1, 60_000)], 'hit')
  t.equal(unprotected.evaluate([op('attacker', 1, 60_000)], 'hit')[0]!.allowed, true, 'without protection the flood frees it (the documented trade-off)')
})

t.test('at maxKeys, the limits of one call never evict or overwrite each other', async (t) => {
  // Two limits per request on a backend that holds two keys: every new client evicts the previous
  // one, and a key being limited is skipped by eviction while another is left.
  const backend = new InMemoryBackend({ maxKeys: 2, clock: new ManualClock(0) })
  const limits = (client: string): EvaluateOp[] => [op(`strict:{${client}}`, 1, 60_000), op(`loose:{${client}}`, 100, 60_000)]
  for (const client of ['c1', 'c2', 'c3', 'c4']) {
    const keys = limits(client).map((o) => o.key)
    t.same(backend.evaluate(limits(client), 'hit').map((d) => d.allowed), [true, true], `${client}: first request admitted`)
    t.same(await backend.multiGet(keys), ['0,1', '0,1'], `${client}: each limit holds its own count of one`)
    for (let request = 2; request <= 3; request++) {
      t.same(backend.evaluate(limits(client), 'hit').map((d) => d.allowed), [false, true], `${client}: request ${request} rejected by the strict limit`)
      t.same(await backend.multiGet(keys), ['0,1', '0,1'], `${client}: request ${request} charged nothing`)
    }
    t.equal(backend.size, 2, 'memory stays bounded')
  }
})

t.test('sweep removes expired keys; expired keys are also dropped when read', async (t) => {
  const clock = new ManualClock(0)
  const backend = new InMemoryBackend({ clock })
  for (let i = 0; i < 10; i++) backend.evaluate([op(`k${i}`, 5, 100)], 'hit')
  backend.evaluate([op('long', 5, 10_000)], 'hit')
  clock.advance(100)
  t.equal(backend.sweep(), 10)
  t.equal(backend.size, 1)
  clock.advance(10_000)
  t.equal(await backend.get('long'), null)
  t.equal(backend.size, 0)
})

t.test('clearPrefix and reset', async (t) => {
  const backend = new InMemoryBackend()
  backend.evaluate([op('u1:{a}'), op('u1:{b}'), op('u2:{a}')], 'hit')
  t.equal(await backend.clearPrefix('u1:{'), 2)
  t.equal(backend.size, 1)
  await backend.reset()
  t.equal(backend.size, 0)
})

t.test('locks: exclusive, TTL-bounded, token-checked release', async (t) => {
  const clock = new ManualClock(0)
  const backend = new InMemoryBackend({ clock })
  const a = backend.getLock('L', 100)
  const b = backend.getLock('L', 100)
  t.equal(await a.acquire({ blocking: false }), true)
  t.equal(await b.acquire({ blocking: false }), false)
  await b.release() // not the owner: no effect
  t.equal(await b.acquire({ blocking: false }), false)
  clock.advance(100)
  t.equal(await b.acquire({ blocking: false }), true, 'an expired lock can be taken')
  await a.release() // a's token no longer matches
  t.equal(await a.acquire({ blocking: false }), false)
  await b.release()
  t.equal(await a.acquire({ blocking: true, timeoutMs: 50 }), true)
})

t.test('the generic lock-based evaluate of the base class is exact under concurrency', async (t) => {
  // A backend that only implements primitives (with an await between read and write) and inherits evaluate.
  const { ThrottleBackend } = await import('../../lib/index.js')
  // A clock that stands still: a window boundary crossed mid-test would legitimately admit more.
  const clock = new ManualClock(0)
  class PrimitiveOnly extends ThrottleBackend {
    readonly store = new InMemoryBackend({ clock })
    protected override now (): number { return clock.now() }
    async get (key: string) { await tick(); return await this.store.get(key) }
    async set (key: string, value: string, ttlMs?: number) { await tick(); await this.store.set(key, value, ttlMs) }
    async delete (key: string) { return await this.store.delete(key) }
    async increment (key: string, amount?: number) { return await this.store.increment(key, amount) }
    async expire (key: string, ttlMs: number) { return await this.store.expire(key, ttlMs) }
    getLock (name: string, ttlMs: number) { return this.store.getLock(name, ttlMs) }
    async reset () { await this.store.reset() }
  }
  // 50 callers queue on one key's lock; the lock wait follows timeoutMs (1 s when 0), which a loaded
  // machine can outlast. This test is about atomicity, not latency: the wait is set out of the way.
  const backend = new PrimitiveOnly({ timeoutMs: 30_000 })
  const decisions = await Promise.all(Array.from({ length: 50 }, async () => await backend.evaluate([op('shared', 10, 60_000)], 'hit')))
  t.equal(decisions.filter((d) => d[0]!.allowed).length, 10)
})

t.test('options are validated', async (t) => {
  for (const [options, name] of [
    [{ maxKeys: -1 }, 'maxKeys'], [{ maxKeys: 1.5 }, 'maxKeys'], [{ protectLimited: 'yes' }, 'protectLimited'],
    [{ sweepIntervalMs: 0 }, 'sweepIntervalMs'], [{ clock: Date }, 'clock'], [{ namespace: '' }, 'namespace'],
    [{ persistent: 1 }, 'persistent'], [{ timeoutMs: Infinity }, 'timeoutMs']
  ] as const) {
    t.throws(() => new InMemoryBackend(options as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: new RegExp(name) }, name)
  }
})

async function tick (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}
