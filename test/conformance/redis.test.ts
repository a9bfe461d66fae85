import t from 'tap'
import { RedisBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'
import { freePort, sharedRedisUrl, startRedis } from '../../scripts/support/services.js'

const url = await sharedRedisUrl()
const deadPort = await freePort()
// A private server for the deadline case: it is frozen (SIGSTOP) and thawed; the shared one never is.
const frozen = await startRedis()
t.teardown(async () => { await frozen.stop() })

runBackendConformance({
  test: t.test.bind(t),
  makeBackend: (namespace) => new RedisBackend(url, { namespace }),
  // Nothing listens there: every call fails.
  makeFailingBackend: () => new RedisBackend(`redis://127.0.0.1:${deadPort}`, { connectTimeoutMs: 200 }),
  hang: {
    makeBackend: (namespace) => new RedisBackend(`redis://127.0.0.1:${frozen.port}`, { namespace }),
    freeze: async () => { await frozen.pause() },
    thaw: async () => { await frozen.resume() }
  }
})
