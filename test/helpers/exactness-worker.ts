/**
 * One app process of the multi-process exactness test. Reads its setup from TRAFFIK_WORKER (JSON),
 * serves GET /burst limited by one shared identifier, and reports its port over IPC.
 */
import Fastify from 'fastify'
import * as traffikModule from '../../lib/index.js'
import type { WorkerSetup } from './multi-process.js'
import { makeBackend, makeStrategy } from './backend-factory.js'

const setup = JSON.parse(process.env.TRAFFIK_WORKER ?? '{}') as WorkerSetup

async function main (): Promise<void> {
  const backend = await makeBackend(setup.backend)
  const app = Fastify()
  await app.register(traffikModule.traffik, { backend })
  app.get('/burst', {
    config: {
      rateLimit: {
        uid: 'burst',
        rate: setup.rate,
        strategy: makeStrategy(setup.strategy),
        identifier: () => 'shared-client'
      }
    }
  }, async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  process.send?.({ port: typeof address === 'object' && address !== null ? address.port : 0 })
  process.on('message', (message) => {
    if (message === 'stop') void app.close().then(() => process.exit(0))
  })
  process.on('disconnect', () => { void app.close().then(() => process.exit(0)) })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
