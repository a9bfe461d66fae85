// Builds the published package: ES modules in dist/esm, CommonJS in dist/cjs, both with types.
//
// Declarations are emitted once, by the CommonJS build, and copied into dist/esm. Emitted under
// NodeNext, they would name types of CommonJS dependencies through their default import
// (`createError.FastifyErrorConstructor`), which only NodeNext/Node16 consumers can read; the
// CommonJS emit writes `import("@fastify/error").FastifyErrorConstructor`, which every module
// resolution reads. Each copy sits under its folder's package.json `type`, so ESM consumers get
// ESM declarations and CommonJS consumers CommonJS ones.
//
// No source maps: the emitted ES2022 keeps the source's names and comments (only types are
// erased), so stack traces into dist/ are readable and point at files the package ships.
import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'

rmSync('dist', { recursive: true, force: true })

function tsc (config) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['node_modules/typescript/bin/tsc', '-p', config], { stdio: 'inherit' })
    child.on('exit', (code) => { resolve(code ?? 1) })
  })
}

// Two independent compilations: run them side by side.
const codes = await Promise.all(['tsconfig.build.json', 'tsconfig.build.cjs.json'].map(tsc))
const failed = codes.find((code) => code !== 0)
if (failed !== undefined) process.exit(failed)

cpSync('dist/cjs', 'dist/esm', { recursive: true, filter: (path) => !/\.[cm]?js$/.test(path) })
mkdirSync('dist/cjs', { recursive: true })
writeFileSync('dist/cjs/package.json', JSON.stringify({ type: 'commonjs' }) + '\n')
writeFileSync('dist/esm/package.json', JSON.stringify({ type: 'module' }) + '\n')
