/**
 * RedisBackend through Redis Sentinel: the client is configured in ioredis (sentinels + master
 * name) and handed over by a factory; decisions, reset and close work as on a plain server.
 * A real sentinel (`redis-server --sentinel`) watches a real master on loopback.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import { FixedWindow, RedisBackend } from '../../lib/index.js'
import { freePort, startRedis, tcpAsk, uniqueNamespace } from '../../scripts/support/services.js'
import { roomInWindow } from '../helpers/window-room.js'

// Counts on one-minute fixed windows of the real clock: each test starts with room in its window.
t.beforeEach(async () => { await roomInWindow(60_000, 3000) })

const master = await startRedis()
const sentinelPort = await freePort()
const dir = mkdtempSync(join(tmpdir(), 'traffik-sentinel-'))
const config = join(dir, 'sentinel.conf')
writeFileSync(config, [
  `port ${sentinelPort}`,
  'bind 127.0.0.1',
  'protected-mode no',
  `dir ${dir}`,
  `sentinel monitor primary 127.0.0.1 ${master.port} 1`
].join('\n') + '\n')
const sentinel = spawn('redis-server', [config, '--sentinel'], { stdio: 'ignore' })
t.teardown(async () => {
  const exited = new Promise((resolve) => sentinel.once('exit', resolve))
  sentinel.kill('SIGTERM')
  await exited
  rmSync(dir, { recursive: true, force: true })
  await master.stop()
})

// Wait until the sentinel knows the master.
for (let attempt = 0; ; attempt++) {
  try {
    const reply = await tcpAsk(sentinelPort, 'SENTINEL get-master-addr-by-name primary\r\n')
    if (reply.includes(String(master.port))) break
  } catch {}
  if (attempt > 100) throw new Error('the sentinel did not come up')
  await new Promise((resolve) => setTimeout(resolve, 50))
}

t.test('a Sentinel-configured ioredis client from a factory', async (t) => {
  const namespace = uniqueNamespace()
  const backend = new RedisBackend(() => new Redis({
    sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
    name: 'primary',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0
  }), { namespace })
  await backend.initialize()
  const op = { strategy: new FixedWindow(), key: 'r:{client}', limit: 2, windowMs: 60_000, cost: 1 }
  const allowed = []
  for (let i = 0; i < 3; i++) allowed.push((await backend.evaluate([op], 'hit'))[0]!.allowed)
  t.same(allowed, [true, true, false])
  const direct = new Redis(master.port, master.host)
  t.teardown(async () => { await direct.quit() })
  t.equal(await direct.exists(`${namespace}:r:{client}`), 1, 'the counter lives on the master the sentinel named')
  await backend.reset()
  t.equal(await direct.exists(`${namespace}:r:{client}`), 0)
  const client = backend.client as Redis
  await backend.close()
  t.equal(client.status, 'end', 'a factory client is closed with the backend')
})
