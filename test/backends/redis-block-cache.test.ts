/**
 * The block cache on a real Redis: under a flood from one blocked client, Redis sees fewer than
 * 0.01 commands per rejected request (counted by the server, `INFO commandstats`), and a reset
 * through the app is seen at once.
 */
import Fastify from 'fastify'
import t from 'tap'
import { RedisBackend, traffik } from '../../lib/index.js'
import { uniqueNamespace } from '../../scripts/support/services.js'
import { privateRedis, redisCommandTotal } from '../../scripts/support/redis-commands.js'

// A private server: commandstats of the shared one would count other test files' commands.
const { url, probe: stats, stop } = await privateRedis()
t.teardown(stop)

/** Every command Redis executed so far (scripts' inner commands included), INFO left out. */
async function commandsSoFar (): Promise<number> {
  return await redisCommandTotal(stats)
}

t.test('a flood of one blocked client: < 0.01 Redis commands per rejected request', async (t) => {
  const backend = new RedisBackend(url, { namespace: uniqueNamespace('bc'), blockCache: true })
  const app = Fastify()
  await app.register(traffik, { backend, global: { rate: '5/hour', identifier: () => 'flooder' } })
  app.get('/', async () => ({ ok: true }))
  t.teardown(async () => {
    await backend.reset()
    await app.close()
  })
  for (let i = 0; i < 5; i++) t.equal((await app.inject('/')).statusCode, 200)
  const before = await commandsSoFar()
  let rejected = 0
  for (let i = 0; i < 2000; i++) {
    const reply = await app.inject('/')
    if (reply.statusCode === 429) rejected++
  }
  const commands = await commandsSoFar() - before
  t.equal(rejected, 2000, 'every request of the flood is rejected')
  t.ok(commands / rejected < 0.01, `${commands} Redis commands for ${rejected} rejected requests (${(commands / rejected).toFixed(4)} per request)`)
  const last = await app.inject('/')
  t.equal(last.statusCode, 429)
  t.ok(Number(last.headers['retry-after']) > 0, 'the cached answer still tells the wait')
  await app.throttle.reset()
  t.equal((await app.inject('/')).statusCode, 200, 'a reset is seen at once')
})
