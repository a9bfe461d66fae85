/**
 * memcached failures say what happened, on real servers: nothing listening and an unknown host
 * fail at once (not as a timeout) with the plain cause in the message and the socket error, with
 * its code, down the `cause` chain; a server that stops answering times out, and the timeout names
 * the last error seen before it. The times are printed for the docs' table, not asserted.
 */
import t from 'tap'
import { MemcachedBackend } from '../../lib/index.js'
import { freePort, startMemcached, uniqueNamespace } from '../../scripts/support/services.js'

type Failure = Error & { code?: string, cause?: unknown }

/** The error `pending` rejects with, and how long it took. */
async function failure (pending: () => Promise<unknown>): Promise<{ error: Failure, ms: number }> {
  const started = performance.now()
  try {
    await pending()
  } catch (error) {
    return { error: error as Failure, ms: Math.round(performance.now() - started) }
  }
  throw new Error('expected a rejection')
}

/** Every `code` down the `cause` chain. */
function causeCodes (error: unknown): string[] {
  const codes: string[] = []
  for (let e = (error as Failure | undefined)?.cause; e !== undefined && e !== null; e = (e as Failure).cause) {
    const code = (e as Failure).code
    if (typeof code === 'string') codes.push(code)
  }
  return codes
}

t.test('nothing listening: the start fails at once, naming the refusal', async (t) => {
  const backend = new MemcachedBackend(`127.0.0.1:${await freePort()}`, { namespace: uniqueNamespace('fail') })
  const { error, ms } = await failure(async () => { await backend.initialize() })
  t.equal(error.code, 'TRAFFIK_ERR_BACKEND', 'a failure, not a timeout')
  t.match(error.message, /^Backend MemcachedBackend\.initialize failed: could not connect to memcached at 127\.0\.0\.1:\d+: get: connection refused \(is memcached running on that port\?\): connect ECONNREFUSED/)
  t.ok(causeCodes(error).includes('ECONNREFUSED'), 'the socket error is in the cause chain')
  t.comment(`refused: reported after ${ms} ms`)
  await backend.close()
})

t.test('an unknown host: the start fails at once, naming the host', async (t) => {
  const backend = new MemcachedBackend('nohost.invalid:11211', { namespace: uniqueNamespace('fail') })
  const { error, ms } = await failure(async () => { await backend.initialize() })
  t.equal(error.code, 'TRAFFIK_ERR_BACKEND')
  t.match(error.message, /could not connect to memcached at nohost\.invalid:11211: get: (unknown host|host name lookup failed).*nohost\.invalid/)
  t.ok(causeCodes(error).some((code) => code === 'ENOTFOUND' || code === 'EAI_AGAIN'))
  t.comment(`unknown host: reported after ${ms} ms`)
  await backend.close()
})

t.test('a server that goes away, then one that hangs on its port: refused at once, then a timeout naming the refusal', async (t) => {
  let server = await startMemcached()
  const port = server.port
  t.teardown(async () => { await server.stop() })
  const backend = new MemcachedBackend(`127.0.0.1:${port}`, { namespace: uniqueNamespace('fail'), timeoutMs: 250 })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  t.equal(await backend.get('k'), null)

  await server.stop()
  const refused = await failure(async () => await backend.get('k'))
  t.equal(refused.error.code, 'TRAFFIK_ERR_BACKEND', 'stopped: a failure, not a timeout')
  t.match(refused.error.message, /connection refused/)
  t.equal(backend.state, 'down')
  t.comment(`stopped server: reported after ${refused.ms} ms`)

  server = await startMemcached({ port })
  await server.pause()
  try {
    const hung = await failure(async () => await backend.get('k'))
    t.equal(hung.error.code, 'TRAFFIK_ERR_BACKEND_TIMEOUT')
    t.match(hung.error.message, /did not answer within 250 ms \(last error seen: .*connection refused/, 'the timeout names the last error seen')
    t.match((hung.error.cause as Error).message, /connection refused/)
    t.comment(`hung server: reported after ${hung.ms} ms`)
  } finally {
    await server.resume()
  }
})
