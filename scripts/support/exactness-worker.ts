/**
 * One app process of the multi-process exactness test. It listens on a free loopback port, reports
 * it over IPC, and is then told which limits to serve: each `configure` message builds a backend
 * (shared by later limits with the same setup) and a throttle, served at GET /burst/<id> through
 * the throttle's own Fastify hook. One set of workers serves every burst of a test file.
 */
import Fastify from 'fastify'
import * as traffikModule from '../../lib/index.js'
import type { Throttle, ThrottleBackend } from '../../lib/index.js'
import type { WorkerSetup } from './multi-process.js'
import { makeBackend, makeStrategy } from './backend-factory.js'

interface ConfigureMessage { type: 'configure', id: string, setup: WorkerSetup }

async function main (): Promise<void> {
  const app = Fastify()
  await app.register(traffikModule.traffik)
  const throttles = new Map<string, Throttle>()
  const backends = new Map<string, Promise<ThrottleBackend>>()

  app.get<{ Params: { id: string } }>('/burst/:id', async (request, reply) => {
    const throttle = throttles.get(request.params.id)
    if (throttle === undefined) return await reply.code(404).send({ unknown: request.params.id })
    await new Promise<void>((resolve, reject) => {
      throttle.hook(request, reply, (error) => { if (error === undefined) resolve(); else reject(error) })
    })
    return { ok: true }
  })

  async function configure ({ id, setup }: ConfigureMessage): Promise<void> {
    const backendKey = JSON.stringify(setup.backend)
    let backend = backends.get(backendKey)
    if (backend === undefined) {
      backend = makeBackend(setup.backend)
      backends.set(backendKey, backend)
    }
    throttles.set(id, app.throttle.create({
      uid: `burst-${id}`,
      rate: setup.rate,
      strategy: makeStrategy(setup.strategy),
      identifier: () => 'shared-client',
      backend: await backend,
      ...(setup.lease === undefined ? {} : { lease: setup.lease })
    }))
  }

  async function stop (): Promise<void> {
    // Leave promptly: the test process (and its runner, through the inherited stdio) waits for us.
    setTimeout(() => process.exit(0), 1000).unref()
    await app.close()
    await Promise.all([...backends.values()].map(async (backend) => { await (await backend).close().catch(() => {}) }))
    process.exit(0)
  }

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  process.send?.({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })
  process.on('message', (message: ConfigureMessage | { type: 'stop' }) => {
    if (message.type === 'configure') {
      configure(message).then(
        () => process.send?.({ type: 'configured', id: message.id }),
        (error: unknown) => process.send?.({ type: 'configured', id: message.id, error: String(error) })
      )
    } else if (message.type === 'stop') {
      stop().catch(() => {})
    }
  })
  process.on('disconnect', () => { stop().catch(() => {}) })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
