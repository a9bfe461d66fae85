import t from 'tap'
import { FixedWindow, RedisBackend, type Decision } from '../../lib/index.js'
import { type EvaluateMode, type EvaluateOp } from '../../lib/backend.js'
import { runBackendConformance } from '../../lib/testing/index.js'
import { TwoTierBackend } from '../../example-app/backends/two-tier-backend.js'
import { freePort, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const url = await sharedRedisUrl()
const deadPort = await freePort()

/** A RedisBackend that counts the decisions it is asked for. */
class CountingRedisBackend extends RedisBackend {
  evaluations = 0
  override async evaluate (ops: readonly EvaluateOp[], mode: EvaluateMode): Promise<Decision[]> {
    this.evaluations++
    return await super.evaluate(ops, mode)
  }
}

runBackendConformance({
  test: t.test.bind(t),
  name: 'TwoTierBackend(Redis)',
  makeBackend: (namespace) => new TwoTierBackend(new RedisBackend(url, { namespace })),
  makeFailingBackend: () => new TwoTierBackend(new RedisBackend(`redis://127.0.0.1:${deadPort}`, { connectTimeoutMs: 200 }))
})

t.test('TwoTierBackend answers a rejected client from L1 until its wait is over', async (t) => {
  const l2 = new CountingRedisBackend(url, { namespace: uniqueNamespace('tier') })
  const backend = new TwoTierBackend(l2)
  await backend.initialize()
  t.teardown(async () => { await l2.initialize(); await l2.reset(); await l2.close() })
  const op: EvaluateOp = { strategy: new FixedWindow(), key: 'flood:{attacker}', limit: 3, windowMs: 60_000, cost: 1 }
  const decisions: Decision[] = []
  for (let i = 0; i < 50; i++) decisions.push((await backend.evaluate([op], 'hit'))[0]!)
  t.equal(decisions.filter((d) => d.allowed).length, 3, 'the limit holds')
  t.equal(l2.evaluations, 4, 'L2 saw the 3 admissions and the first rejection only')
  const last = decisions.at(-1)!
  t.ok(last.retryAfterMs > 0 && last.retryAfterMs <= decisions[3]!.retryAfterMs, 'the remembered wait counts down, never up')
  t.equal(last.remaining, 0)
  t.equal((await backend.evaluate([{ ...op, cost: 0 }], 'check'))[0]!.allowed, true, 'a stat (cost 0) still reads L2')
  await backend.evaluate([op], 'refund')
  t.equal((await backend.evaluate([op], 'hit'))[0]!.allowed, true, 'a refund through the backend clears L1 at once')
  t.equal(l2.closed, false)
  await backend.close()
  t.equal(l2.closed, true, 'closing the composite closes its tiers')
})
