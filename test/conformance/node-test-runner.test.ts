import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { InMemoryBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'

t.test('the conformance suite runs under node:test too', async (t) => {
  // The cases the fixture registers (a no-op test function only collects their names).
  const expected = runBackendConformance({ test: () => {}, makeBackend: (namespace) => new InMemoryBackend({ namespace }), makeFailingBackend: null }).length
  const fixture = fileURLToPath(new URL('./fixtures/node-test-in-memory.ts', import.meta.url))
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', fixture], { encoding: 'utf8', timeout: 60_000 })
  if (run.status !== 0) t.comment(run.stdout.slice(-3000), run.stderr.slice(-1000))
  t.equal(run.status, 0, 'node --test exits 0')
  t.match(run.stdout, new RegExp(`# pass ${expected}\\b`), `all ${expected} cases pass`)
  t.match(run.stdout, /# fail 0\b/)
})
