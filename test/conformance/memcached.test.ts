import t from 'tap'
import { MemcachedBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'
import { freePort, sharedMemcachedServers } from '../helpers/services.js'

const servers = await sharedMemcachedServers()
const deadPort = await freePort()

runBackendConformance({
  test: t.test.bind(t),
  makeBackend: (namespace) => new MemcachedBackend(servers, { namespace }),
  makeFailingBackend: () => new MemcachedBackend(`127.0.0.1:${deadPort}`),
  // memcached keeps time in whole seconds: a key given n ms lives up to ceil(n / 1000) + 1 s.
  ttlResolutionMs: 2000
})
