/**
 * The published package works with both `import` and `require`, types included: builds it, then
 * loads it by its own name (package self-reference resolves through the exports map).
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('build, then require() and import() the package by name', async (t) => {
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'pipe' })
  for (const file of ['dist/esm/lib/index.js', 'dist/esm/lib/index.d.ts', 'dist/cjs/lib/index.js', 'dist/cjs/lib/index.d.ts']) {
    t.ok(existsSync(`${root}/${file}`), file)
  }
  const names = ['traffik', 'default', 'ThrottleBackend', 'InMemoryBackend', 'BackendError', 'FixedWindow', 'Throttle', 'createThrottle', 'parseRate', 'EXEMPTED']
  const cjs = execFileSync(process.execPath, ['-e', `
    const m = require('fastify-traffik')
    const names = ${JSON.stringify(names)}
    console.log(JSON.stringify({ missing: names.filter((n) => m[n] === undefined), plugin: typeof m.traffik, same: m.default === m.traffik }))
  `], { cwd: root }).toString()
  t.same(JSON.parse(cjs), { missing: [], plugin: 'function', same: true }, 'require works')
  const esm = execFileSync(process.execPath, ['--input-type=module', '-e', `
    import traffik, * as m from 'fastify-traffik'
    const names = ${JSON.stringify(names)}
    console.log(JSON.stringify({ missing: names.filter((n) => m[n] === undefined), plugin: typeof traffik, same: traffik === m.traffik }))
  `], { cwd: root }).toString()
  t.same(JSON.parse(esm), { missing: [], plugin: 'function', same: true }, 'import works')
  const registered = execFileSync(process.execPath, ['-e', `
    const Fastify = require('fastify')
    const app = Fastify()
    app.register(require('fastify-traffik'), { global: { rate: '1/min' } }).after(() => {
      app.get('/', async () => 'ok')
    })
    app.inject('/').then(() => app.inject('/')).then((res) => { console.log(res.statusCode); return app.close() })
  `], { cwd: root }).toString().trim()
  t.equal(registered, '429', 'a CommonJS app registers the module object directly')
})
