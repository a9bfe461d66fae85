/**
 * example-app/cluster.ts, the ClusterBackend program the docs point to, runs: its 2 node:cluster
 * workers share one '5/min' budget through the primary and admit 5 of 10 requests between them.
 * (A docs sample has 30 s; three processes starting through tsx on a loaded machine need longer.)
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const example = fileURLToPath(new URL('../example-app/cluster.ts', import.meta.url))

t.test('the ClusterBackend example admits one budget over 2 workers', async (t) => {
  const { code, output } = await new Promise<{ code: number | null, output: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', example], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.on('exit', (code) => { resolve({ code, output }) })
  })
  t.equal(code, 0, output)
  t.match(output, /admitted 5 of 10 requests over 2 workers/)
})
