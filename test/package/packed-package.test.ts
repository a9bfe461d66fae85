/**
 * The package as users get it: packed with `npm pack` (which builds it) from a copy of the
 * sources, then installed from the tarball into a fresh consumer project. The tarball holds every
 * file package.json points at, and nothing that points at files it lacks; `require` and `import`
 * load every entry point (exports map, conditions, CommonJS interop); the consumer type-checks
 * under every module resolution a TypeScript user may have (node10, node16, nodenext, bundler),
 * from an ES module and from a CommonJS module, with `strict` on and without `skipLibCheck`, so
 * the package's own declarations are checked too. An app pinned to ioredis 5 installs the same
 * tarball without ERESOLVE and passes the conformance kit from its own project, through ioredis 5.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { InMemoryBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'
import { freePort, sharedRedisUrl } from '../../scripts/support/services.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  files: string[]
  main: string
  types: string
  exports: Record<string, unknown>
  typesVersions?: Record<string, Record<string, string[]>>
}
const versionOf = (name: string): string =>
  (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version

// Building, installing and eight type checks: about a minute of CPU time, longer on a busy machine.
t.setTimeout(480_000)

// npm scripts export npm_* variables (prefix, package name, ...) that would point a nested npm at
// this repository; and the children load nothing of lib/, so they record no coverage.
const childEnv = Object.fromEntries(Object.entries(process.env)
  .filter(([name]) => !name.toLowerCase().startsWith('npm_') && name !== 'NODE_V8_COVERAGE'))

async function npm (args: string[], cwd: string): Promise<string> {
  // Under `npm test`, npm_execpath is the npm running us: use the same one, on the same Node.
  const npmCli = process.env.npm_execpath
  const [command, prefix] = npmCli?.endsWith('.js') === true ? [process.execPath, [npmCli]] : ['npm', []]
  const { stdout } = await run(command, [...prefix, ...args], { cwd, env: childEnv, maxBuffer: 64 * 1024 * 1024 })
  return stdout
}

/** Copies what the build and the tarball need; never a dist/ that another test may be rebuilding. */
function copySources (to: string): void {
  const entries = new Set([
    'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md',
    'lib', 'types', 'scripts/build.mjs', 'tsconfig.json', 'tsconfig.build.json', 'tsconfig.build.cjs.json',
    ...pkg.files.filter((f) => f !== 'dist')
  ])
  for (const entry of entries) {
    try {
      cpSync(join(root, entry), join(to, entry), { recursive: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
  }
  symlinkSync(join(root, 'node_modules'), join(to, 'node_modules'), 'dir')
}

const work = mkdtempSync(join(tmpdir(), 'traffik-packed-'))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })

async function pack (): Promise<{ tarball: string, files: string[] }> {
  const source = join(work, 'source')
  mkdirSync(source)
  copySources(source)
  const [packed] = JSON.parse(await npm(['pack', '--json', '--pack-destination', work], source)) as Array<{ filename: string, files: Array<{ path: string }> }>
  return { tarball: join(work, packed!.filename), files: packed!.files.map((f) => f.path) }
}
const packed = pack()
// Each subtest awaits it and reports its failure; this only keeps an early one from crashing the file.
packed.catch(() => {})

/** Every file path package.json names for resolution: main, types, exports targets, typesVersions. */
function pointedAt (): string[] {
  const targets: string[] = [pkg.main, pkg.types]
  const walk = (value: unknown): void => {
    if (typeof value === 'string') targets.push(value)
    else if (Array.isArray(value)) value.forEach(walk)
    else if (value !== null && typeof value === 'object') Object.values(value).forEach(walk)
  }
  walk(pkg.exports)
  walk(pkg.typesVersions)
  return targets.map((path) => path.replace(/^\.\//, ''))
}

t.test('the tarball holds what package.json points at, a license, and no dangling source maps', async (t) => {
  const { files } = await packed
  const held = new Set(files)
  for (const target of pointedAt()) t.ok(held.has(target), `${target} is in the tarball`)
  t.ok(held.has('LICENSE'), 'LICENSE is in the tarball')
  t.ok(held.has('CHANGELOG.md'), 'CHANGELOG.md is in the tarball')
  // A map is only useful with the sources it names; the package ships neither or both.
  const maps = files.filter((path) => path.endsWith('.map'))
  const dangling = maps.filter((map) => {
    const content = readFileSync(join(work, 'source', map), 'utf8')
    const { sources } = JSON.parse(content) as { sources: string[] }
    return sources.some((s) => !held.has(join(map, '..', s)))
  })
  t.same(dangling, [], 'every source map names sources the tarball holds')
  t.notOk(files.some((path) => /(^|\/)test\//.test(path) || path.endsWith('.test.ts')), 'no tests in the tarball')
})

// Subpaths beyond the two used below get a namespace import each, so a new entry point is covered too.
const otherSubpaths = Object.keys(pkg.exports)
  .filter((key) => key !== '.' && key !== './testing' && key !== './package.json')
  .map((key) => `fastify-traffik/${key.slice(2)}`)

const commonCode = `
const app = Fastify()
const limits: ThrottleOptions = { rate: '10/min', strategy: new FixedWindow() }
const backend: ThrottleBackend = new InMemoryBackend()
const rate: Rate = parseRate('5/s')
const exempt: typeof EXEMPTED = EXEMPTED
app.get('/', { config: { rateLimit: [limits, { rate: { limit: rate.limit, windowMs: rate.windowMs }, identifier: () => exempt }] } },
  async (request) => ({ backend: request.throttleBackend?.constructor.name ?? null }))
const cases: string[] = runBackendConformance({
  test: (name: string, fn: () => Promise<void>) => { void name; void fn },
  makeBackend: (namespace: string) => new InMemoryBackend({ namespace }),
  makeFailingBackend: null
})
${otherSubpaths.map((_, i) => `void other${i}`).join('\n')}
`

const esmSource = `import Fastify from 'fastify'
import traffik, { traffik as named, EXEMPTED, FixedWindow, InMemoryBackend, parseRate, type Rate, type ThrottleBackend, type ThrottleOptions } from 'fastify-traffik'
import { runBackendConformance } from 'fastify-traffik/testing'
${otherSubpaths.map((path, i) => `import * as other${i} from '${path}'`).join('\n')}
${commonCode}
await app.register(traffik, { backend, global: limits })
await app.register(named, { backend })
const response = await app.inject('/')
export const checked: [number, number, number] = [response.statusCode, cases.length, app.throttle.throttles.size]
`

/**
 * A CommonJS consumer. Under node10/node16/nodenext, ES import syntax compiles to require(), so
 * both forms resolve through the "require" conditions. Under bundler (module preserve) ES import
 * syntax resolves through "import", so a CommonJS file there uses `import = require` only.
 */
function cjsSource (requireOnly: boolean): string {
  const imports = requireOnly
    ? `import Fastify = require('fastify')
import traffikModule = require('fastify-traffik')
import testing = require('fastify-traffik/testing')
const { FixedWindow, InMemoryBackend, parseRate, traffik } = traffikModule
// Destructuring would widen the unique symbol to symbol, which no identifier may return.
const EXEMPTED: typeof traffikModule.EXEMPTED = traffikModule.EXEMPTED
const { runBackendConformance } = testing
type Rate = traffikModule.Rate
type ThrottleBackend = traffikModule.ThrottleBackend
type ThrottleOptions = traffikModule.ThrottleOptions`
    : `import Fastify from 'fastify'
import traffik, { EXEMPTED, FixedWindow, InMemoryBackend, parseRate, type Rate, type ThrottleBackend, type ThrottleOptions } from 'fastify-traffik'
import { runBackendConformance } from 'fastify-traffik/testing'
import traffikModule = require('fastify-traffik')
import testing = require('fastify-traffik/testing')`
  return `${imports}
${otherSubpaths.map((path, i) => `import other${i} = require('${path}')`).join('\n')}
${commonCode}
const kit: typeof runBackendConformance = testing.runBackendConformance
async function main (): Promise<number> {
  await app.register(traffik, { backend, global: limits })
  await app.register(traffikModule.traffik, { backend })
  await app.register(traffikModule.default, { backend })
  const response = await app.inject('/')
  return response.statusCode + cases.length + kit.length + app.throttle.throttles.size
}
export = main
`
}

const settings: Array<{ name: string, file: string, options: Record<string, unknown> }> = [
  { name: 'node10, ES module', file: 'esm/index.ts', options: { module: 'ESNext', moduleResolution: 'Node10' } },
  { name: 'node10, CommonJS', file: 'cjs/index.ts', options: { module: 'CommonJS', moduleResolution: 'Node10' } },
  { name: 'node16, ES module', file: 'esm/index.ts', options: { module: 'Node16', moduleResolution: 'Node16' } },
  { name: 'node16, CommonJS', file: 'cjs/index.ts', options: { module: 'Node16', moduleResolution: 'Node16' } },
  { name: 'nodenext, ES module', file: 'esm/index.ts', options: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  { name: 'nodenext, CommonJS', file: 'cjs/index.ts', options: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  { name: 'bundler, ES module', file: 'esm/index.ts', options: { module: 'ESNext', moduleResolution: 'Bundler' } },
  { name: 'bundler, CommonJS', file: 'cjs/require.ts', options: { module: 'Preserve', moduleResolution: 'Bundler' } }
]

const consumer = join(work, 'consumer')

async function install (): Promise<void> {
  const { tarball } = await packed
  mkdirSync(join(consumer, 'esm'), { recursive: true })
  mkdirSync(join(consumer, 'cjs'), { recursive: true })
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  writeFileSync(join(consumer, 'esm', 'package.json'), JSON.stringify({ type: 'module' }))
  writeFileSync(join(consumer, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }))
  // The same fastify and @types/node as this repository, from npm's cache when it has them.
  // ioredis too: RedisBackend's declarations name its types, so a consumer that checks library
  // declarations needs the optional peer installed. @fastify/rate-limit too: a team migrating
  // with fastify-traffik/compat has both installed, and both declare config.rateLimit.
  await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball,
    `fastify@${versionOf('fastify')}`, `@types/node@${versionOf('@types/node')}`, `ioredis@${versionOf('ioredis')}`,
    `@fastify/rate-limit@${versionOf('@fastify/rate-limit')}`], consumer)
}
const installed = install()
installed.catch(() => {})

const contractNames = ['traffik', 'default', 'ThrottleBackend', 'InMemoryBackend', 'RedisBackend', 'MemcachedBackend', 'BackendError',
  'FixedWindow', 'SlidingWindowCounter', 'SlidingWindowLog', 'TokenBucket', 'TokenBucketWithDebt', 'LeakyBucket',
  'LeakyBucketWithQueue', 'GCRA', 'Throttle', 'createThrottle', 'parseRate', 'EXEMPTED', 'throttleIf', 'bypassIf',
  'failover', 'retry', 'CircuitBreaker']
const subpaths = Object.keys(pkg.exports).filter((key) => key !== '.' && key !== './package.json').map((key) => `fastify-traffik/${key.slice(2)}`)

t.test('the installed package loads with require() and import(), every subpath too', async (t) => {
  await installed
  const node = async (args: string[]): Promise<unknown> =>
    JSON.parse((await run(process.execPath, args, { cwd: consumer, env: childEnv })).stdout) as unknown
  t.same(await node(['-e', `
    const m = require('fastify-traffik')
    const names = ${JSON.stringify(contractNames)}
    const subpaths = ${JSON.stringify(subpaths)}
    console.log(JSON.stringify({
      missing: names.filter((n) => m[n] === undefined), plugin: typeof m.traffik, same: m.default === m.traffik,
      emptySubpaths: subpaths.filter((p) => Object.keys(require(p)).length === 0)
    }))
  `]), { missing: [], plugin: 'function', same: true, emptySubpaths: [] }, 'require works')
  t.same(await node(['--input-type=module', '-e', `
    import traffik, * as m from 'fastify-traffik'
    const names = ${JSON.stringify(contractNames)}
    const subpaths = ${JSON.stringify(subpaths)}
    const empty = []
    for (const p of subpaths) if (Object.keys(await import(p)).length === 0) empty.push(p)
    console.log(JSON.stringify({
      missing: names.filter((n) => m[n] === undefined), plugin: typeof traffik, same: traffik === m.traffik, emptySubpaths: empty
    }))
  `]), { missing: [], plugin: 'function', same: true, emptySubpaths: [] }, 'import works')
  // CommonJS users register the module object itself (fastify-plugin's default export interop).
  t.same(await node(['-e', `
    const Fastify = require('fastify')
    const app = Fastify()
    app.register(require('fastify-traffik'), { global: { rate: '1/min' } }).after(() => {
      app.get('/', async () => 'ok')
    })
    app.inject('/').then(() => app.inject('/')).then((res) => { console.log(res.statusCode); return app.close() })
  `]), 429, 'a CommonJS app registers the module object directly')
  // @opentelemetry/api is an optional peer the consumer did not install: nothing loads it unless
  // telemetry is asked for, and then registration names the missing package.
  const withoutOtel = `
    app.register(traffik, { telemetry: true })
    app.ready().then(() => console.log('"ready"'), (error) => console.log(JSON.stringify(error.code)))
  `
  t.equal(await node(['-e', `const app = require('fastify')(); const traffik = require('fastify-traffik');${withoutOtel}`]),
    'TRAFFIK_ERR_MISSING_DEPENDENCY', 'require: telemetry without @opentelemetry/api is a coded error')
  t.equal(await node(['--input-type=module', '-e', `import Fastify from 'fastify'; import traffik from 'fastify-traffik'; const app = Fastify();${withoutOtel}`]),
    'TRAFFIK_ERR_MISSING_DEPENDENCY', 'import: the same')
})

// Type checks answer the same on every Node.js line: a run that leaves the static checks to another
// run (TRAFFIK_STATIC_CHECKS=0, see scripts/run-tests.ts) leaves these too.
const typeChecks = process.env.TRAFFIK_STATIC_CHECKS !== '0'

if (typeChecks) {
  t.test('a consumer type-checks against the packed package under every module resolution', async (t) => {
    await installed
    writeFileSync(join(consumer, 'esm', 'index.ts'), esmSource)
    writeFileSync(join(consumer, 'cjs', 'index.ts'), cjsSource(false))
    writeFileSync(join(consumer, 'cjs', 'require.ts'), cjsSource(true))

    const tsc = join(root, 'node_modules/typescript/bin/tsc')
    const check = async (setting: typeof settings[number]): Promise<{ code: number, output: string }> => {
      const config = `tsconfig.${setting.name.replace(/[^a-z0-9]+/gi, '-')}.json`
      writeFileSync(join(consumer, config), JSON.stringify({
        compilerOptions: { ...setting.options, target: 'ES2022', lib: ['ES2022'], strict: true, noEmit: true, esModuleInterop: true, types: ['node'] },
        files: [setting.file]
      }))
      try {
        await run(process.execPath, [tsc, '-p', config], { cwd: consumer, env: childEnv })
        return { code: 0, output: '' }
      } catch (error) {
        const failure = error as { code?: number, stdout?: string, stderr?: string }
        return { code: failure.code ?? 1, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` }
      }
    }
    // Two at a time: each tsc keeps one core busy.
    const results = new Array<{ code: number, output: string }>(settings.length)
    let next = 0
    await Promise.all([0, 1].map(async () => {
      while (next < settings.length) {
        const i = next++
        results[i] = await check(settings[i]!)
      }
    }))
    for (const [i, setting] of settings.entries()) {
      const { code, output } = results[i]!
      t.equal(code, 0, `${setting.name}${code === 0 ? '' : `\n${output.slice(0, 3000)}`}`)
    }
  })
}

// A team in the middle of a migration: @fastify/rate-limit still imported in one file (its tests,
// say), fastify-traffik/compat in the app. Both declare config.rateLimit and fastify.rateLimit.
const migratingSource = (importStyle: 'esm' | 'cjs'): string => `${importStyle === 'esm'
  ? `import Fastify from 'fastify'
import oldRateLimit from '@fastify/rate-limit'
import rateLimit, { type RateLimitPluginOptions } from 'fastify-traffik/compat'`
  : `import Fastify = require('fastify')
import oldRateLimit = require('@fastify/rate-limit')
import compat = require('fastify-traffik/compat')
const rateLimit = compat.default
type RateLimitPluginOptions = compat.RateLimitPluginOptions`}
const options: RateLimitPluginOptions = { max: 100, timeWindow: '1 minute', keyGenerator: (request) => request.ip, allowList: ['127.0.0.1'] }
export async function build (): Promise<number> {
  const app = Fastify()
  await app.register(rateLimit, options)
  app.get('/login', { config: { rateLimit: { max: 5, timeWindow: 60_000, groupId: 'auth', onExceeded: (_request, key) => { void key } } } }, async () => 'ok')
  app.get('/health', { config: { rateLimit: false } }, async () => 'ok')
  app.get('/hook', { preHandler: app.rateLimit({ max: 1 }) }, async () => 'ok')
  const before = Fastify()
  await before.register(oldRateLimit, options)
  return (await app.inject('/login')).statusCode + app.rateLimitCompat.throttles.size
}
`

if (typeChecks) {
  t.test('with @fastify/rate-limit installed too, a compat consumer type-checks (strict, no skipLibCheck)', async (t) => {
    await installed
    mkdirSync(join(consumer, 'migrating-esm'), { recursive: true })
    mkdirSync(join(consumer, 'migrating-cjs'), { recursive: true })
    writeFileSync(join(consumer, 'migrating-esm', 'package.json'), JSON.stringify({ type: 'module' }))
    writeFileSync(join(consumer, 'migrating-cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }))
    writeFileSync(join(consumer, 'migrating-esm', 'index.ts'), migratingSource('esm'))
    writeFileSync(join(consumer, 'migrating-cjs', 'index.ts'), migratingSource('cjs'))
    const tsc = join(root, 'node_modules/typescript/bin/tsc')
    for (const [name, file] of [['esm', 'migrating-esm/index.ts'], ['cjs', 'migrating-cjs/index.ts']] as const) {
      const config = `tsconfig.migrating-${name}.json`
      writeFileSync(join(consumer, config), JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022'], strict: true, noEmit: true, esModuleInterop: true, types: ['node'] },
        files: [file]
      }))
      const output = await run(process.execPath, [tsc, '-p', config], { cwd: consumer, env: childEnv })
        .then(() => '', (error: { stdout?: string }) => error.stdout ?? 'failed')
      t.equal(output, '', `${name}: tsc --strict passes with both packages`)
    }
  })
}

// An app pinned to ioredis 5 (the peer range is ^5 || ^6): npm installs the tarball beside it
// without ERESOLVE (no --legacy-peer-deps, no --force), and the conformance kit passes from that
// project against the real redis-server, through the ioredis 5 it resolves.
const pinnedSource = `import { test } from 'node:test'
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { RedisBackend } from 'fastify-traffik'
import { runBackendConformance } from 'fastify-traffik/testing'

const url = process.env.REDIS_URL
test('the backend speaks through the app\\'s ioredis 5', async () => {
  const { version } = JSON.parse(readFileSync(new URL('./node_modules/ioredis/package.json', import.meta.url), 'utf8'))
  if (!version.startsWith('5.')) throw new Error('ioredis ' + version)
  const backend = new RedisBackend(url, { namespace: 'pinned-probe' })
  await backend.initialize()
  const same = backend.client instanceof Redis
  await backend.close()
  if (!same) throw new Error('the backend loaded another ioredis')
})
runBackendConformance({
  test,
  makeBackend: (namespace) => new RedisBackend(url, { namespace }),
  makeFailingBackend: () => new RedisBackend('redis://127.0.0.1:' + process.env.DEAD_PORT, { connectTimeoutMs: 200 })
})
`

t.test('an app pinned to ioredis 5 installs the tarball without ERESOLVE and passes the conformance kit', async (t) => {
  const { tarball } = await packed
  const pinned = join(work, 'pinned-ioredis5')
  mkdirSync(pinned)
  writeFileSync(join(pinned, 'package.json'), JSON.stringify({ name: 'pinned', version: '1.0.0', private: true, type: 'module', dependencies: { ioredis: '^5.0.0' } }))
  const installing = await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball, 'ioredis@^5', `fastify@${versionOf('fastify')}`], pinned)
    .then(() => '', (error: { stderr?: string }) => error.stderr ?? 'failed')
  t.equal(installing, '', 'npm install succeeds (no ERESOLVE)')
  if (installing !== '') return
  writeFileSync(join(pinned, 'conformance.mjs'), pinnedSource)
  // The cases the kit registers with the same options (a no-op test function only collects them), and the version check.
  const expected = runBackendConformance({ test: () => {}, makeBackend: () => new InMemoryBackend(), makeFailingBackend: () => new InMemoryBackend() }).length + 1
  const env = { ...childEnv, REDIS_URL: await sharedRedisUrl(), DEAD_PORT: String(await freePort()) }
  const { stdout, code } = await run(process.execPath, ['--test', '--test-reporter=tap', 'conformance.mjs'], { cwd: pinned, env, maxBuffer: 16 * 1024 * 1024 })
    .then(({ stdout }) => ({ stdout, code: 0 }), (error: { stdout?: string, code?: number }) => ({ stdout: error.stdout ?? '', code: error.code ?? 1 }))
  if (code !== 0) t.comment(stdout.slice(-3000))
  t.equal(code, 0, 'node --test exits 0')
  t.match(stdout, new RegExp(`# pass ${expected}\\b`), `all ${expected} cases pass`)
  t.match(stdout, /# fail 0\b/)
})
