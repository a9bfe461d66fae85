/**
 * The before/after example app (example-app/migration): one client script against the app on
 * @fastify/rate-limit and against the app on fastify-traffik/compat, every response the same.
 * Both files are type-checked with the project (tsc --strict), both packages installed.
 */
import { execFile } from 'node:child_process'
import { mock } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { seen, type Seen } from './side-by-side.js'

// The example is a project of its own (compat and @fastify/rate-limit, not the root entry point),
// type-checked with its own tsconfig below; loaded by URL so this project's check does not enter it.
const example = (file: string): string => new URL(`../../example-app/migration/${file}`, import.meta.url).href
const { buildBefore } = await import(example('before.ts')) as { buildBefore: () => Promise<FastifyInstance> }
const { buildAfter } = await import(example('after.ts')) as { buildAfter: () => Promise<FastifyInstance> }

async function client (build: () => Promise<FastifyInstance>): Promise<Seen[]> {
  mock.timers.enable({ apis: ['Date'], now: 0 })
  const app = await build()
  try {
    const out: Seen[] = []
    const send = async (request: string | Record<string, unknown>): Promise<void> => { out.push(seen(await app.inject(request as never))) }
    for (let i = 0; i < 4; i++) await send('/')
    for (let i = 0; i < 3; i++) await send({ url: '/', headers: { 'x-api-key': 'k1' } })
    for (let i = 0; i < 4; i++) await send({ url: '/', remoteAddress: '10.0.0.1' })
    for (let i = 0; i < 4; i++) await send({ method: 'POST', url: '/login', headers: { 'x-api-key': 'k2' } })
    for (let i = 0; i < 5; i++) await send('/health')
    mock.timers.tick(60_000)
    await send('/')
    return out
  } finally {
    await app.close()
    mock.timers.reset()
  }
}

t.test('the example app answers the same before and after the one-import migration', async (t) => {
  const before = await client(buildBefore)
  const after = await client(buildAfter)
  t.equal(before.length, 21)
  t.same(after, before)
  t.same(before.map((s) => s.status), [200, 200, 200, 429, 200, 200, 200, 200, 200, 200, 200, 200, 200, 429, 429, 200, 200, 200, 200, 200, 200])
  t.same(before.slice(13, 15).map((s) => (JSON.parse(s.body) as { retryIn: string }).retryIn), ['1 minute', '2 minutes'], 'exponentialBackoff on the login route')
})

// A type check gives the same answer on every Node.js line: a run without the static checks
// (TRAFFIK_STATIC_CHECKS=0, see scripts/run-tests.ts) leaves it to the run that has them.
const typeChecks = process.env.TRAFFIK_STATIC_CHECKS !== '0'

if (typeChecks) {
  t.test('the example type-checks with tsc --strict (no skipLibCheck) with both packages installed', async (t) => {
    const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url))
    const project = fileURLToPath(new URL('../../example-app/migration/tsconfig.json', import.meta.url))
    const output = await promisify(execFile)(process.execPath, [tsc, '-p', project]).then(() => '', (error: { stdout?: string }) => error.stdout ?? 'failed')
    t.equal(output, '')
  })
}
