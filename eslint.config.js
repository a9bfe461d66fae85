// The Fastify ecosystem's style (neostandard), with TypeScript.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'node_modules/**', '.docs-samples/**', '.ci/**', 'scratch/**', 'coverage/**'] }),
  {
    // Type tests name values with `void expr` so the compiler checks them without running anything.
    files: ['test/types/**'],
    rules: { 'no-void': 'off' }
  }
]
