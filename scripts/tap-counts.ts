/**
 * Runs tap with the raw TAP reporter, echoes its output, and counts test cases (the subtests of
 * each file; a file that crashed or timed out counts as one failure). Shared by `npm test` and
 * `npm run test:chaos`, which both end with `N passed, N failed`.
 */
import { spawn } from 'node:child_process'

export interface TapCounts { passed: number, failed: number, exitCode: number }

export async function runTapCounting (tapArgs: string[], env: NodeJS.ProcessEnv): Promise<TapCounts> {
  const tap = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '-R', 'tap', ...tapArgs], {
    env, stdio: ['ignore', 'pipe', 'inherit']
  })
  let passed = 0
  let failed = 0
  let buffer = ''
  const count = (line: string): void => {
    if (/^ {4}ok \d+/.test(line)) passed++
    else if (/^ {4}not ok \d+/.test(line)) failed++
    else if (/^not ok \d+/.test(line)) failed++
  }
  tap.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk)
    buffer += chunk.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    lines.forEach(count)
  })
  const exitCode = await new Promise<number>((resolve) => tap.on('exit', (code) => { resolve(code ?? 1) }))
  count(buffer)
  return { passed, failed, exitCode }
}
