/**
 * Every TypeScript sample in README.md and docs/ is a complete program, and this test runs each one
 * (against the run's real Redis and memcached, which samples read from REDIS_URL and
 * MEMCACHED_SERVERS). A sample that throws, exits non-zero or hangs fails here, so docs cannot rot.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { sharedMemcachedServers, sharedRedisUrl } from '../../scripts/support/services.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const outDir = join(root, '.docs-samples')
const SAMPLE_CONCURRENCY = 3

// Dozens of samples, each a process of its own: more time than tap's default per file.
t.setTimeout(400_000)

function markdownFiles (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? markdownFiles(path) : name.endsWith('.md') ? [path] : []
  })
}

interface Sample { file: string, line: number, code: string }

export function extractSamples (markdown: string, file: string): Sample[] {
  const samples: Sample[] = []
  const fence = /^```(ts|typescript)\s*$([\s\S]*?)^```\s*$/gm
  for (const match of markdown.matchAll(fence)) {
    const line = markdown.slice(0, match.index).split('\n').length
    samples.push({ file, line, code: match[2]!.replace(/^\n/, '') })
  }
  return samples
}

const files = [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))]
const samples = files.flatMap((file) => extractSamples(readFileSync(file, 'utf8'), relative(root, file)))

t.test('the docs have samples to run', async (t) => {
  t.ok(samples.length >= 10, `${samples.length} samples found`)
})

t.test('every documentation sample runs', async (t) => {
  // The samples show that the docs run; what of lib/ they reach the tests reach too. Without
  // NODE_V8_COVERAGE they run about a third faster and leave no coverage files (about 250 MB).
  const { NODE_V8_COVERAGE: _coverage, ...inherited } = process.env
  const env = { ...inherited, REDIS_URL: await sharedRedisUrl(), MEMCACHED_SERVERS: await sharedMemcachedServers() }
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })
  t.teardown(() => { rmSync(outDir, { recursive: true, force: true }) })
  const paths = samples.map((sample, i) => {
    const path = join(outDir, `${sample.file.replace(/[^a-z0-9]+/gi, '-')}-${sample.line}-${i}.ts`)
    writeFileSync(path, sample.code)
    return path
  })
  // A few at a time: each sample is a process of its own, mostly waiting on its own start-up.
  const results = new Array<{ code: number | null, output: string }>(samples.length)
  let next = 0
  await Promise.all(Array.from({ length: SAMPLE_CONCURRENCY }, async () => {
    while (next < samples.length) {
      const i = next++
      results[i] = await run(paths[i]!, env)
    }
  }))
  for (const [i, sample] of samples.entries()) {
    const result = results[i]!
    t.equal(result.code, 0, `${sample.file}:${sample.line} runs${result.code === 0 ? '' : `\n${result.output.slice(-2000)}`}`)
  }
})

async function run (path: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null, output: string }> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', join(root, 'test/docs/sample-preload.ts'), path], {
      cwd: root, env, stdio: ['ignore', 'pipe', 'pipe']
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const timer = setTimeout(() => {
      output += '\n[sample did not finish within 30 s]'
      child.kill('SIGKILL')
    }, 30_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}
