/**
 * Every backend stores an offence in the operation that decides it, also when the rejected limit
 * shares the call with others: the offence record is kept, the other limits are not charged
 * (all-or-nothing holds), and a check stores nothing. InMemory, Redis, Memcached and a custom
 * backend on the generic locked evaluate; each with one limit and with three, and with every
 * rejection during a block an offence (`offendWhileBlocked`, exponentialBackoff's policy).
 */
import t, { type Test } from 'tap'
import { FixedWindow, InMemoryBackend, MemcachedBackend, RedisBackend, SlidingWindowLog, type ThrottleBackend } from '../../lib/index.js'
import type { EvaluateOp } from '../../lib/backend.js'
import { Escalation } from '../../lib/strategies/escalation.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'
import { CommandedBackend } from '../reliability/commanded-backend.js'

const backends: Array<[string, () => Promise<ThrottleBackend>]> = [
  ['InMemory', async () => new InMemoryBackend()],
  ['Redis', async () => new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace() })],
  ['Memcached', async () => new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace() })],
  ['custom (generic evaluate)', async () => new CommandedBackend({ timeoutMs: 0 })]
]

const HOUR = 3_600_000
const escalating = new Escalation(new FixedWindow(), { blocks: [HOUR] })
const backoff = new Escalation(new FixedWindow(), { blocks: { initialMs: HOUR, factor: 2, maxMs: 2 ** 52 }, periodMs: 'block', offendWhileBlocked: true, ban: { after: 3 } })
const op = (key: string, strategy = escalating, limit = 1): EvaluateOp => ({ strategy, key, limit, windowMs: HOUR, cost: 1 })

async function check (t: Test, make: () => Promise<ThrottleBackend>): Promise<void> {
  const backend = await make()
  await backend.initialize()
  t.teardown(async () => { await backend.close() })

  // One limit.
  t.equal((await backend.evaluate([op('solo')], 'hit'))[0]!.allowed, true)
  t.same((await backend.evaluate([op('solo')], 'check'))[0]!.escalation, { offences: 1, offence: true, banned: false }, 'a check computes an offence')
  const first = (await backend.evaluate([op('solo')], 'hit'))[0]!
  t.same(first.escalation, { offences: 1, offence: true, banned: false }, 'the check stored nothing: this hit is offence 1')
  const second = (await backend.evaluate([op('solo')], 'hit'))[0]!
  t.same(second.escalation, { offences: 1, offence: false, banned: false }, 'the offence was stored by the rejected hit')
  t.ok(second.retryAfterMs > HOUR - 60_000 && second.retryAfterMs <= HOUR, 'blocked for the hour')

  // Three limits: the escalating one rejects; the others (a counter and a log) are not charged.
  const log = new SlidingWindowLog()
  const ops = [op('a'), op('b', new FixedWindow() as never, 10), op('c', log as never, 10)]
  t.same((await backend.evaluate(ops, 'hit')).map((d) => d.allowed), [true, true, true])
  const rejected = await backend.evaluate(ops, 'hit')
  t.same(rejected.map((d) => d.allowed), [false, true, true])
  t.equal(rejected[0]!.escalation!.offence, true)
  const after = await backend.evaluate(ops, 'check')
  t.same(after.map((d) => d.remaining), [0, 8, 8], 'the other limits were not charged by the rejected call: one charge each, and the check asks for one more')
  t.same(after[0]!.escalation, { offences: 1, offence: false, banned: false }, 'the offence was kept')

  // Every rejection during a block an offence, doubling the block (exponentialBackoff), the third a ban.
  t.equal((await backend.evaluate([op('backoff', backoff)], 'hit'))[0]!.allowed, true)
  const rejections = []
  for (let i = 0; i < 3; i++) rejections.push((await backend.evaluate([op('backoff', backoff)], 'hit'))[0]!)
  t.same(rejections.map((d) => d.escalation), [1, 2, 3].map((n) => ({ offences: n, offence: true, banned: n === 3 })), 'each rejection an offence, the third bans')
  rejections.forEach((d, i) => {
    t.ok(d.retryAfterMs > HOUR * 2 ** i - 60_000 && d.retryAfterMs <= HOUR * 2 ** i, `rejection ${i + 1} blocks for ${2 ** i} h`)
  })
}

for (const [name, make] of backends) t.test(name, async (t) => { await check(t, make) })
