import t from 'tap'
import { runBackendConformance } from '../../lib/testing/index.js'
import { PostgresBackend } from '../../example-app/backends/postgres-backend.js'
import { freePort, startPostgres } from '../../scripts/support/services.js'

const server = await startPostgres()
t.teardown(async () => { await server.stop() })
const deadPort = await freePort()

runBackendConformance({
  test: t.test.bind(t),
  makeBackend: (namespace) => new PostgresBackend(server.url, { namespace, poolSize: 4 }),
  // Nothing listens there: every call fails with pg's connection error.
  makeFailingBackend: () => new PostgresBackend(`postgres://postgres@127.0.0.1:${deadPort}/postgres`)
})
