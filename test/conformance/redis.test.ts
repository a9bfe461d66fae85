import t from 'tap'
import { RedisBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'
import { freePort, sharedRedisUrl, startRedis } from '../../scripts/support/services.js'
import { redisDrivers } from '../helpers/redis-drivers.js'

const url = await sharedRedisUrl()
const deadPort = await freePort()
// A private server for the deadline case: it is frozen (SIGSTOP) and thawed; the shared one never is.
const frozen = await startRedis()
t.teardown(async () => { await frozen.stop() })

// The whole kit for every client library.
for (const driver of redisDrivers) {
  t.test(`RedisBackend through ${driver}`, async (t) => {
    runBackendConformance({
      test: t.test.bind(t),
      makeBackend: (namespace) => new RedisBackend(url, { namespace, driver }),
      // Nothing listens there: every call fails.
      makeFailingBackend: () => new RedisBackend(`redis://127.0.0.1:${deadPort}`, { connectTimeoutMs: 200, driver }),
      hang: {
        makeBackend: (namespace) => new RedisBackend(`redis://127.0.0.1:${frozen.port}`, { namespace, driver }),
        freeze: async () => { await frozen.pause() },
        thaw: async () => { await frozen.resume() }
      }
    })
  })
}
