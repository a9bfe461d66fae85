/**
 * `npm test`: the static checks (type check with the type tests, the room ladder, the linter),
 * then a real redis-server and memcached on free loopback ports, every tap test against them,
 * and the coverage of `lib/` held to the thresholds in `.c8rc.json`. TRAFFIK_STATIC_CHECKS=0
 * leaves to another run (CI's first Node.js line) what checks the sources rather than the
 * runtime: the static checks, the packed package's type checks, the coverage measurement, and
 * the documentation samples (every sample is a program of its own: about 90 s of CPU per run). Prints
 * `N passed, N failed` (test cases, i.e. subtests, plus one per check) as its last line.
 *
 * Arguments are passed to tap (e.g. `npm test -- test/leaves/rate.test.ts`); with arguments the
 * coverage check is skipped (a few files never cover the library).
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMemcached, startRedis, type RunningServer } from './support/services.js'
import { printFailures, runTapCounting } from './tap-counts.js'

const extraArgs = process.argv.slice(2)
// A run on a second Node.js line sets TRAFFIK_STATIC_CHECKS=0: the compiler, the linter, the
// type tests and the coverage thresholds give the same answer whichever Node.js runs them, so one
// run of them is enough (V8's coverage also slows every test process by about a quarter).
const staticChecks = process.env.TRAFFIK_STATIC_CHECKS !== '0'
const servers: RunningServer[] = []

/** Runs a check to completion with its output shown; resolves whether it passed. */
function check (title: string, args: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  console.log(`# ${title}`)
  const result = spawnSync(process.execPath, args, { stdio: 'inherit', env })
  const ok = result.status === 0
  console.log(`# ${title}: ${ok ? 'ok' : 'FAILED'}`)
  return ok
}

interface StaticCheck { readonly title: string, readonly args: string[] }

/**
 * Runs the static checks one after another in the background, their output kept, while the tap
 * suite runs: they need no server and use about one core, which the suite leaves partly idle.
 * Resolves each check's output and verdict, to be printed once the suite is done.
 */
async function runInBackground (list: readonly StaticCheck[]): Promise<Array<{ title: string, ok: boolean, output: string }>> {
  const results: Array<{ title: string, ok: boolean, output: string }> = []
  for (const { title, args } of list) {
    results.push(await new Promise((resolve) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
      child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
      child.on('error', (error) => { resolve({ title, ok: false, output: output + String(error) }) })
      child.on('close', (code) => { resolve({ title, ok: code === 0, output }) })
    }))
  }
  return results
}

async function main (): Promise<number> {
  console.log(`# Node.js ${process.version}`)
  const staticRun = runInBackground(staticChecks
    ? [
        { title: 'type check (tsc)', args: ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'] },
        // Route limit types differ by which entry points a program imports: one program each.
        { title: 'type tests, native plugin only', args: ['node_modules/typescript/bin/tsc', '-p', 'test/types/programs/tsconfig.native.json'] },
        { title: 'type tests, compat only', args: ['node_modules/typescript/bin/tsc', '-p', 'test/types/programs/tsconfig.compat.json'] },
        { title: 'room ladder (dependency-cruiser)', args: ['node_modules/dependency-cruiser/bin/dependency-cruise.mjs', '--no-progress', 'lib', 'types', 'scripts'] },
        { title: 'lint (neostandard)', args: ['node_modules/eslint/bin/eslint.js', '.'] }
      ]
    : [])
  if (!staticChecks) console.log('# TRAFFIK_STATIC_CHECKS=0: type checks, type tests, lint, the coverage check and the docs samples are not run in this invocation')

  console.log('# starting redis-server and memcached on loopback')
  const redis = await startRedis()
  servers.push(redis)
  const memcached = await startMemcached()
  servers.push(memcached)
  const measureCoverage = extraArgs.length === 0 && staticChecks
  const coverageDir = mkdtempSync(join(tmpdir(), 'traffik-coverage-'))
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: `redis://${redis.host}:${redis.port}`,
    MEMCACHED_SERVERS: `${memcached.host}:${memcached.port}`,
    ...(measureCoverage ? { NODE_V8_COVERAGE: coverageDir } : {})
  }

  // Without the static checks, the docs samples are left out too (see the header); tap's own
  // default exclusions (folders named fixture(s) or dist) are kept, since --exclude replaces them.
  const tapArgs = extraArgs.length === 0 && !staticChecks
    ? ['--exclude=**/@(fixture*(s)|dist)/**', '--exclude=test/docs/samples.test.ts']
    : extraArgs
  const counts = await runTapCounting(tapArgs, env)
  const checks: Array<{ title: string, ok: boolean }> = []
  for (const { title, ok, output } of await staticRun) {
    console.log(`# ${title}`)
    if (output !== '') process.stdout.write(output.endsWith('\n') ? output : `${output}\n`)
    console.log(`# ${title}: ${ok ? 'ok' : 'FAILED'}`)
    checks.push({ title, ok })
  }
  if (measureCoverage) {
    // tap's own coverage cannot see through the tsx loader (it reports every file as covered), so
    // V8's coverage of every test process is mapped back to the sources by c8.
    const title = 'coverage of lib/ (c8, thresholds in .c8rc.json)'
    checks.push({ title, ok: check(title, ['node_modules/c8/bin/c8.js', 'report', '--temp-directory', coverageDir]) })
  }
  rmSync(coverageDir, { recursive: true, force: true })
  const failedChecks = checks.filter(({ ok }) => !ok).map(({ title }) => title)
  printFailures([...counts.failures, ...failedChecks])
  const passed = counts.passed + checks.length - failedChecks.length
  const failed = counts.failed + failedChecks.length
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
