/**
 * compat's `exponentialBackoff` with `ban` is exact across processes: four app processes share one
 * Redis, a concurrent burst for one client is spread over them, and every rejection is counted as
 * one offence in the one Lua script that decides it. So the burst admits exactly `max`, answers
 * exactly `ban` 429s and 403s for the rest, and the next request's wait is the block of the
 * offence that follows the burst's: timeWindow × 2^(rejections), to the second.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const workerPath = fileURLToPath(new URL('../../scripts/support/compat-worker.ts', import.meta.url))

async function startWorker (env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  const child = fork(workerPath, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { type: string, port: number }) => { if (m.type === 'listening') resolve(m.port) })
    child.once('exit', (code) => { reject(new Error(`worker exited with ${code} before listening`)) })
  })
  return { child, port }
}

async function get (port: number, agent: Agent): Promise<{ status: number, retryAfter: string | undefined }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }) })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('4 processes on Redis: a burst of 24 with max 4, ban 10 gives exactly 4 × 200, 10 × 429, 10 × 403', async (t) => {
  const HOUR = 3_600_000 // a window the burst cannot cross: compat's windows are aligned to the clock
  const options = { max: 4, timeWindow: HOUR, exponentialBackoff: true, ban: 10, nameSpace: uniqueNamespace('compat-backoff-procs') }
  const env = { REDIS_URL: await sharedRedisUrl(), COMPAT_OPTIONS: JSON.stringify(options) }
  const workers = await Promise.all(Array.from({ length: 4 }, async () => await startWorker(env)))
  t.teardown(() => { for (const { child } of workers) child.disconnect() })
  const agent = new Agent({ keepAlive: true, maxSockets: 32 })
  t.teardown(() => { agent.destroy() })
  const burst = await Promise.all(Array.from({ length: 24 }, async (_, i) => await get(workers[i % 4]!.port, agent)))
  const count = (status: number): number => burst.filter((r) => r.status === status).length
  t.same([count(200), count(429), count(403)], [4, 10, 10])
  const next = await get(workers[0]!.port, agent)
  t.same([next.status, next.retryAfter], [403, String(3600 * 2 ** 20)], 'offence 21: blocked for 2^20 hours, every rejection of the burst counted once')
})
