/**
 * One server under test, in its own process. Reads the scenario from BENCH_SCENARIO (JSON),
 * listens on a free loopback port, reports it over IPC, and answers 'cpu' messages with its CPU
 * time so the harness can compute CPU time per request independently of the load generator.
 * The harness keeps it running across rounds and stops it at the end.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Scenario } from './scenarios.js'
import { installLimiter } from './limiters.js'

const scenario = JSON.parse(process.env.BENCH_SCENARIO ?? '{}') as Scenario

async function main (): Promise<void> {
  const app: FastifyInstance = Fastify({ logger: false })
  await installLimiter(app, scenario)
  app.get('/', async () => ({ hello: 'world' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  process.send?.({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })
  const stop = (): void => { app.close().then(() => process.exit(0), () => process.exit(1)) }
  process.on('message', (message: { type: string }) => {
    if (message.type === 'cpu') {
      const usage = process.cpuUsage()
      process.send?.({ type: 'cpu', micros: usage.user + usage.system, rss: process.memoryUsage().rss })
    } else if (message.type === 'stop') {
      stop()
    }
  })
  // The harness died: do not outlive it.
  process.on('disconnect', stop)
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
