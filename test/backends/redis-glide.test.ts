/**
 * RedisBackend through Valkey GLIDE against a real redis-server, for what the shared suites
 * (conformance kit, exactness, Cluster, round trips, connection failures) do not show: a client
 * passed in or made by a factory (recognised by its shape, owned or not), the URL's parts
 * (credentials, database, TLS) in the client's configuration, and the recovery from a flushed
 * script cache, whose error GLIDE words its own way.
 */
import { GlideClient } from '@valkey/valkey-glide'
import t from 'tap'
import { FixedWindow, RedisBackend } from '../../lib/index.js'
import { type EvaluateOp } from '../../lib/backend.js'
import { glideTarget } from '../../lib/backends/redis-glide.js'
import { sharedRedisUrl, startRedis, uniqueNamespace } from '../../scripts/support/services.js'
import '../helpers/redis-drivers.js'
import { roomInWindow } from '../helpers/window-room.js'

// Counts on one-minute fixed windows of the real clock: each test starts with room in its window.
t.beforeEach(async () => { await roomInWindow(60_000, 3000) })

const url = await sharedRedisUrl()
const { hostname, port } = new URL(url)
const address = { host: hostname, port: Number(port) }

const fixedWindow = new FixedWindow()
const op = (key: string, limit: number): EvaluateOp => ({ strategy: fixedWindow, key, limit, windowMs: 60_000, cost: 1 })

t.test('a GlideClient passed in is recognised by its shape, used as it is and never closed', async (t) => {
  const client = await GlideClient.createClient({ addresses: [address], requestTimeout: 2000 })
  t.teardown(() => { client.close() })
  const namespace = uniqueNamespace('gl')
  const backend = new RedisBackend(client, { namespace })
  await backend.initialize()
  t.equal(backend.driver, 'valkey-glide')
  t.equal(backend.client, client)
  await backend.set('k', 'v')
  t.equal(await client.get(`${namespace}:k`), 'v', 'written under the namespace')
  const [first, second] = [await backend.evaluate([op('w:{a}', 1)], 'hit'), await backend.evaluate([op('w:{a}', 1)], 'hit')]
  t.match(first, [{ allowed: true }])
  t.match(second, [{ allowed: false }])
  t.equal((await backend.healthCheck()).healthy, true)
  await backend.reset()
  await backend.close()
  t.equal(await backend.ready(), false)
  t.equal(await client.ping(), 'PONG', 'the user still owns it')
})

t.test('a factory of a GlideClient: called once, its client closed unless closeClient is false', async (t) => {
  const made: GlideClient[] = []
  const factory = async (): Promise<GlideClient> => {
    const client = await GlideClient.createClient({ addresses: [address], requestTimeout: 2000 })
    made.push(client)
    return client
  }
  const backend = new RedisBackend(factory, { namespace: uniqueNamespace('gl') })
  await Promise.all([backend.initialize(), backend.initialize()])
  t.equal(made.length, 1, 'concurrent initializations share one client')
  await backend.close()
  await t.rejects(made[0]!.ping(), /closed/, 'the client it owned is closed')

  const kept = new RedisBackend(factory, { namespace: uniqueNamespace('gl'), closeClient: false })
  await kept.initialize()
  await kept.close()
  t.equal(await made[1]!.ping(), 'PONG', 'closeClient: false leaves it open')
  made[1]!.close()
})

t.test('a URL becomes a GlideClient configuration: address, credentials, database, TLS, fail-fast settings', async (t) => {
  t.match(glideTarget('redis://cache.internal', 250, 5000), {
    host: 'cache.internal',
    port: 6379,
    config: { addresses: [{ host: 'cache.internal', port: 6379 }], useTLS: false, requestTimeout: 1000, advancedConfiguration: { connectionTimeout: 5000 } }
  })
  const full = glideTarget('rediss://app%40eu:p%3Ass@[::1]:7000/3', 500, 300, { clientName: 'api', advancedConfiguration: { connectionTimeout: 50 } })
  t.match(full, { host: '::1', port: 7000 })
  t.match(full.config, { useTLS: true, credentials: { username: 'app@eu', password: 'p:ss' }, databaseId: 3, requestTimeout: 2000, clientName: 'api' })
  t.same(full.config['advancedConfiguration'], { connectionTimeout: 50 }, 'clientOptions win over the defaults')
  t.same(glideTarget('redis://:secret@h:1', 250, 5000).config['credentials'], { password: 'secret' }, 'a password alone')
  t.notOk('credentials' in glideTarget('redis://h:1', 250, 5000).config, 'no credentials without a password')
})

t.test('a URL with a database: the backend makes a GlideClient on that database and closes it', async (t) => {
  const namespace = uniqueNamespace('gl')
  const backend = new RedisBackend(`${url}/2`, { namespace, driver: 'valkey-glide' })
  t.equal(backend.client, undefined, 'no client before initialize')
  await backend.initialize()
  const client = backend.client as GlideClient
  await backend.set('k', 'v')
  const reader = await GlideClient.createClient({ addresses: [address], databaseId: 2 })
  t.teardown(() => { reader.close() })
  t.equal(await reader.get(`${namespace}:k`), 'v', 'written in database 2')
  await backend.reset()
  await backend.close()
  await t.rejects(client.ping(), /closed/, 'the client it made is closed')
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
})

t.test('NOSCRIPT (GLIDE: NoScriptError): after SCRIPT FLUSH the next decision reloads the script and counts on', async (t) => {
  const server = await startRedis()
  t.teardown(async () => { await server.stop() })
  const backend = new RedisBackend(`redis://${server.host}:${server.port}`, { namespace: uniqueNamespace('gl'), driver: 'valkey-glide' })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  await backend.evaluate([op('k:{a}', 5)], 'hit')
  await backend.evaluate([op('k:{a}', 5)], 'hit')
  const client = backend.client as GlideClient
  await client.scriptFlush()
  const [third] = await backend.evaluate([op('k:{a}', 5)], 'hit')
  t.match(third, { allowed: true, remaining: 2 }, 'decided after the flush, state kept')
  await backend.incrementWithTtl('n', 1, 1000)
  await client.scriptFlush()
  t.equal(await backend.incrementWithTtl('n', 1, 1000), 2, 'the primitive scripts recover too')
})
