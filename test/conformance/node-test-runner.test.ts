import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { conformanceCases } from '../../lib/testing/index.js'

t.test('the conformance suite runs under node:test too', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/node-test-in-memory.ts', import.meta.url))
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', fixture], { encoding: 'utf8', timeout: 60_000 })
  if (run.status !== 0) t.comment(run.stdout.slice(-3000), run.stderr.slice(-1000))
  t.equal(run.status, 0, 'node --test exits 0')
  t.match(run.stdout, new RegExp(`# pass ${conformanceCases.length}\\b`), `all ${conformanceCases.length} cases pass`)
  t.match(run.stdout, /# fail 0\b/)
})
