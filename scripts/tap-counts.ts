/**
 * Runs tap with the raw TAP reporter, echoes its output, and counts test cases (the subtests of
 * each file; a file that crashed or timed out counts as one failure) and names each failure, so a
 * long run's last lines say what failed. Shared by `npm test` and
 * `npm run test:chaos`, which both end with `N passed, N failed`.
 */
import { spawn } from 'node:child_process'

export interface TapCounts {
  passed: number
  failed: number
  exitCode: number
  /** `file > subtest` of every failed test case, in the order tap reported them. */
  failures: string[]
}

export async function runTapCounting (tapArgs: string[], env: NodeJS.ProcessEnv): Promise<TapCounts> {
  const tap = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '-R', 'tap', ...tapArgs], {
    env, stdio: ['ignore', 'pipe', 'inherit']
  })
  let passed = 0
  let failed = 0
  let buffer = ''
  let file = ''
  const failures: string[] = []
  const count = (line: string): void => {
    const opening = /^# Subtest: (.*)$/.exec(line)
    if (opening !== null) file = opening[1] ?? file
    if (/^ {4}ok \d+/.test(line)) passed++
    else if (/^ {4}not ok \d+/.test(line)) {
      failed++
      failures.push(`${file} > ${testName(line)}`)
    } else if (/^not ok \d+/.test(line)) {
      failed++
      failures.push(testName(line))
    }
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
  return { passed, failed, exitCode, failures }
}

/** The name in a TAP result line, without its number or its `# time=` directive. */
function testName (line: string): string {
  return line.replace(/^\s*not ok \d+ - /, '').replace(/ # time=[\d.]+ms$/, '')
}

/** Prints the failed test cases, one per line, so the end of a long log says what failed. */
export function printFailures (failures: readonly string[]): void {
  for (const failure of failures) console.log(`# failed: ${failure}`)
}
