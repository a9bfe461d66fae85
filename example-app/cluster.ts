/**
 * ClusterBackend, the complete program docs/backends/cluster.md points to: the primary holds the counters
 * and forks 2 workers; each worker serves the app with a shared '5/min' limit, sends 5 requests
 * and reports how many passed. Together they admit 5 of 10. Run: npx tsx example-app/cluster.ts
 */
import cluster from 'node:cluster'
import Fastify from 'fastify'
import traffik, { ClusterBackend } from '../lib/index.js'

if (cluster.isPrimary) {
  // In the primary: hold the counters, then start the workers.
  const primary = ClusterBackend.attachPrimary()
  let admitted = 0
  let reported = 0
  for (let i = 0; i < 2; i++) {
    cluster.fork().on('message', (message: { admitted?: number }) => {
      if (typeof message.admitted !== 'number') return // the app's own messages pass through untouched
      admitted += message.admitted
      if (++reported === 2) {
        console.log(`admitted ${admitted} of 10 requests over 2 workers`) // 5: one budget of '5/min'
        for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
        primary.detach().catch(console.error)
      }
    })
  }
} else {
  // In each worker: the app, with the shared backend.
  const app = Fastify()
  await app.register(traffik, { backend: new ClusterBackend() })
  app.get('/', { config: { rateLimit: { rate: '5/min', identifier: () => 'one-client' } } }, async () => ({ ok: true }))
  // A real worker would app.listen(); here each one sends 5 requests and reports what passed.
  let admitted = 0
  for (let i = 0; i < 5; i++) if ((await app.inject('/')).statusCode === 200) admitted++
  process.send?.({ admitted })
  await app.close()
}
