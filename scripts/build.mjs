// Builds the published package: ES modules in dist/esm, CommonJS in dist/cjs, both with types.
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'

rmSync('dist', { recursive: true, force: true })
for (const config of ['tsconfig.build.json', 'tsconfig.build.cjs.json']) {
  const result = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', config], { stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
mkdirSync('dist/cjs', { recursive: true })
writeFileSync('dist/cjs/package.json', JSON.stringify({ type: 'commonjs' }) + '\n')
writeFileSync('dist/esm/package.json', JSON.stringify({ type: 'module' }) + '\n')
