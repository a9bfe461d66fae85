import t from 'tap'
import { RedisBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'
import { freePort, sharedRedisUrl } from '../helpers/services.js'

const url = await sharedRedisUrl()
const deadPort = await freePort()

runBackendConformance({
  test: t.test.bind(t),
  makeBackend: (namespace) => new RedisBackend(url, { namespace }),
  // Nothing listens there: every call fails.
  makeFailingBackend: () => new RedisBackend(`redis://127.0.0.1:${deadPort}`, { connectTimeoutMs: 200 })
})
