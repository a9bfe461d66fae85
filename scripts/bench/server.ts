/**
 * One server under test, in its own process. Reads the scenario from BENCH_SCENARIO (JSON),
 * listens on a free loopback port, reports it over IPC, and answers 'cpu' messages with its CPU
 * time so the harness can compute CPU time per request independently of the load generator.
 * The harness keeps it running across rounds and stops it at the end.
 *
 * A ClusterBackend scenario's process is a node:cluster primary: it holds the counters and forks
 * the workers, which run this same file as servers sharing one port (the primary hands out the
 * connections). Its CPU time is its own plus every worker's.
 */
import cluster, { type Worker } from 'node:cluster'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Scenario } from './scenarios.js'
import { builtPackage, installLimiter } from './limiters.js'

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

async function primary (): Promise<void> {
  const { ClusterBackend } = await builtPackage()
  const attached = ClusterBackend.attachPrimary()
  const workers = Array.from({ length: scenario.workers ?? 2 }, () => cluster.fork())
  const ports = await Promise.all(workers.map(async (worker) => (await reply<{ port: number }>(worker, 'listening')).port))
  process.send?.({ type: 'listening', port: ports[0] })
  const stop = (): void => {
    for (const worker of workers) worker.kill()
    attached.detach().then(() => process.exit(0), () => process.exit(1))
  }
  process.on('message', (message: { type: string }) => {
    if (message.type === 'cpu') {
      Promise.all(workers.map(async (worker) => {
        const answer = reply<{ micros: number, rss: number }>(worker, 'cpu')
        worker.send({ type: 'cpu' })
        return await answer
      })).then((usages) => {
        const own = process.cpuUsage()
        process.send?.({
          type: 'cpu',
          micros: own.user + own.system + usages.reduce((sum, u) => sum + u.micros, 0),
          rss: process.memoryUsage().rss + usages.reduce((sum, u) => sum + u.rss, 0)
        })
      }, (error: unknown) => { console.error(error) })
    } else if (message.type === 'stop') {
      stop()
    }
  })
  process.on('disconnect', stop)
}

async function reply<T> (worker: Worker, type: string): Promise<T> {
  return await new Promise((resolve) => {
    const onMessage = (message: { type?: string }): void => {
      if (message?.type !== type) return
      worker.off('message', onMessage)
      resolve(message as T)
    }
    worker.on('message', onMessage)
  })
}

;(scenario.backend === 'cluster' && cluster.isPrimary ? primary() : main()).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
