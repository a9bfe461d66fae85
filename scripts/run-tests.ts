/**
 * `npm test`: type-checks everything (type tests included), starts a real redis-server and
 * memcached on free loopback ports, runs every tap test against them, stops them, and prints
 * `N passed, N failed` (test cases, i.e. subtests) as its last line.
 *
 * Arguments are passed to tap (e.g. `npm test -- test/unit/rate.test.ts`).
 */
import { spawnSync } from 'node:child_process'
import { startMemcached, startRedis, type RunningServer } from '../test/helpers/services.js'
import { runTapCounting } from './tap-counts.js'

const extraArgs = process.argv.slice(2)
const servers: RunningServer[] = []

async function main (): Promise<number> {
  console.log('# type check (tsc)')
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' })
  const typeFailures = tsc.status === 0 ? 0 : 1

  console.log('# starting redis-server and memcached on loopback')
  const redis = await startRedis()
  servers.push(redis)
  const memcached = await startMemcached()
  servers.push(memcached)
  const env = {
    ...process.env,
    REDIS_URL: `redis://${redis.host}:${redis.port}`,
    MEMCACHED_SERVERS: `${memcached.host}:${memcached.port}`
  }

  const counts = await runTapCounting(extraArgs, env)
  const passed = counts.passed + (typeFailures === 0 ? 1 : 0)
  const failed = counts.failed + typeFailures
  console.log(`${passed} passed, ${failed} failed`)
  return failed === 0 && counts.exitCode === 0 ? 0 : 1
}

async function stopServers (): Promise<void> {
  await Promise.all(servers.map(async (server) => { await server.stop() }))
}

main().then(async (code) => {
  await stopServers()
  process.exit(code)
}, async (error: unknown) => {
  console.error(error)
  await stopServers()
  console.log('0 passed, 1 failed')
  process.exit(1)
})
