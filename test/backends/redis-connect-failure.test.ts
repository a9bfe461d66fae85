/**
 * Connection failures that say what happened, for every client library, against real servers:
 * a wrong password, no password, nothing listening, an unknown host and a TLS handshake with a
 * plain server are reported as soon as the client sees them (a coded BackendError, not the
 * timeout, with the cause in the message and in `cause`); a hung server is reported at the
 * deadline as a timeout naming the last error seen. Each case prints how long it took to report.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { RedisBackend, type RedisDriverName } from '../../lib/index.js'
import { definitiveFailure } from '../../lib/backends/redis-connect-failure.js'
import { ensureCommand, freePort, startRedis, tcpAsk } from '../../scripts/support/services.js'
import { redisDrivers } from '../helpers/redis-drivers.js'

// Long enough that a definitive failure reported by the deadline instead would show as a timeout code.
const PATIENT_MS = 20_000
const HUNG_DEADLINE_MS = 2500

// A TLS port whose certificate is self-signed, so no client trusts it.
ensureCommand('openssl', 'openssl')
const certs = mkdtempSync(join(tmpdir(), 'traffik-tls-'))
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certs, 'key.pem'), '-out', join(certs, 'cert.pem'), '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })
const tlsPort = await freePort()
const secure = await startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', join(certs, 'cert.pem'), '--tls-key-file', join(certs, 'key.pem'), '--tls-auth-clients', 'no'] })
const locked = await startRedis()
const hung = await startRedis()
const deadPort = await freePort()
// Set after start: the start-up probe PINGs without a password.
await tcpAsk(locked.port, 'CONFIG SET requirepass s3cret\r\n')
t.teardown(async () => {
  await Promise.all([secure.stop(), locked.stop(), hung.stop()])
  rmSync(certs, { recursive: true, force: true })
})

interface Outcome { ms: number, error: Error & { code?: string, cause?: unknown } }

async function connectFailure (driver: RedisDriverName, url: string, connectTimeoutMs = PATIENT_MS): Promise<Outcome> {
  const backend = new RedisBackend(url, { driver, connectTimeoutMs })
  const started = performance.now()
  try {
    await backend.initialize()
  } catch (error) {
    return { ms: Math.round(performance.now() - started), error: error as Outcome['error'] }
  } finally {
    await backend.close()
  }
  throw new Error(`${driver} connected to ${url}`)
}

const measured: string[] = []

const cases: Array<{ cause: string, url: () => string, says: RegExp, driverSays: RegExp }> = [
  { cause: 'wrong password', url: () => `redis://:wrong@127.0.0.1:${locked.port}`, says: /wrong password/, driverSays: /WRONGPASS/ },
  { cause: 'no password', url: () => `redis://127.0.0.1:${locked.port}`, says: /requires a password/, driverSays: /NOAUTH/ },
  { cause: 'nothing listening', url: () => `redis://127.0.0.1:${deadPort}`, says: /connection refused/, driverSays: /ECONNREFUSED/ },
  { cause: 'unknown host', url: () => 'redis://nohost.invalid:6379', says: /unknown host/, driverSays: /ENOTFOUND|nohost\.invalid/ },
  { cause: 'untrusted TLS certificate', url: () => `rediss://127.0.0.1:${tlsPort}`, says: /TLS handshake failed/, driverSays: /self.signed|invalid peer certificate/i }
]

for (const driver of redisDrivers) {
  t.test(`${driver}: definitive failures are reported at once, with their cause`, async (t) => {
    for (const { cause, url, says, driverSays } of cases) {
      const { ms, error } = await connectFailure(driver, url())
      measured.push(`| ${driver} | ${cause} | ${error.message} | ${ms} |`)
      t.equal(error.code, 'TRAFFIK_ERR_BACKEND', `${cause}: not the connect timeout (${ms} ms)`)
      t.match(error.message, says, `${cause}: ${error.message}`)
      t.match(error.message, /could not connect to Redis/)
      t.ok(error.cause instanceof Error, `${cause}: the driver's error is the cause`)
      t.match(String((error.cause as Error).message) + String((error.cause as { code?: string }).code), driverSays, `${cause}: the cause is the driver's own error`)
    }
  })

  t.test(`${driver}: a hung server is reported at the deadline as a timeout naming the last error`, async (t) => {
    await hung.pause()
    try {
      const { ms, error } = await connectFailure(driver, `redis://127.0.0.1:${hung.port}`, HUNG_DEADLINE_MS)
      measured.push(`| ${driver} | hung server | ${error.message} | ${ms} |`)
      t.equal(error.code, 'TRAFFIK_ERR_BACKEND_TIMEOUT', error.message)
      t.match(error.message, new RegExp(`timed out: could not connect to Redis \\(${driver}\\) within ${HUNG_DEADLINE_MS} ms`))
      t.match(error.message, /the last error seen: .+|no error was seen/)
    } finally {
      await hung.resume()
    }
  })

  t.test(`${driver}: a right password connects`, async (t) => {
    const backend = new RedisBackend(`redis://:s3cret@127.0.0.1:${locked.port}`, { driver })
    t.teardown(async () => { await backend.close() })
    await backend.initialize()
    t.equal(await backend.ready(), true)
  })
}

t.test('what counts as definitive', async (t) => {
  const coded = (code: string, message = code): Error => Object.assign(new Error(message), { code })
  t.equal(definitiveFailure('not an error'), undefined)
  t.equal(definitiveFailure(new Error('Socket timeout')), undefined, 'a timeout may pass')
  t.equal(definitiveFailure(coded('ECONNRESET')), undefined, 'a reset connection may come back')
  t.equal(definitiveFailure(coded('EAI_AGAIN')), undefined, 'a DNS server that did not answer may answer later')
  t.match(definitiveFailure(coded('EHOSTUNREACH')), /unreachable/)
  t.match(definitiveFailure(new Error('ERR AUTH <password> called without any password configured for the default user')), /server has none set/)
  t.match(definitiveFailure(new Error('NOPERM this user has no permissions to run the evalsha command')), /permission/)
  t.match(definitiveFailure(new Error('Connection failed', { cause: coded('ECONNREFUSED') })), /refused/, 'a wrapped socket error')
  t.match(definitiveFailure(new AggregateError([coded('ETIMEDOUT'), coded('ECONNREFUSED')], 'connect failed')), /refused/, 'every address of a host')
  t.match(definitiveFailure(coded('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate')), /TLS/)
  t.match(definitiveFailure(Object.assign(new Error('handshake'), { library: 'SSL routines' })), /TLS/)
})

t.test('time to report, per cause', async (t) => {
  t.comment(`| client | cause | message | ms |\n${measured.join('\n')}`)
  t.ok(measured.length >= redisDrivers.length * (cases.length + 1))
})

t.test('a connection factory that fails (GLIDE connects inside createClient) is reported with its cause, at once', async (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1\n  more lines from the client'), { code: 'ECONNREFUSED' })
  const backend = new RedisBackend(async () => { throw refused })
  const error = await backend.initialize().then(() => undefined, (e: unknown) => e as Error & { code?: string, cause?: unknown })
  t.equal(error?.code, 'TRAFFIK_ERR_BACKEND')
  t.match(error?.message, /the connection factory failed: .*ECONNREFUSED 127\.0\.0\.1:1/)
  t.notMatch(error?.message, /\n/, 'on one line')
  t.equal(error?.cause, refused, 'the factory\'s error is the cause')
  await backend.close()
})
