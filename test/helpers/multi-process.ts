/**
 * Multi-process exactness: N Fastify processes share one backend; a burst of concurrent requests
 * for one identifier is spread over them; the number allowed must equal what one in-memory process
 * admits for the same burst (computed here with a fixed clock).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { request as httpRequest, Agent } from 'node:http'
import { fileURLToPath } from 'node:url'
import { InMemoryBackend, ManualClock, parseRate } from '../../lib/index.js'
import { makeStrategy, type BackendSetup, type StrategySetup } from './backend-factory.js'

export interface WorkerSetup {
  backend: BackendSetup
  strategy: StrategySetup
  rate: string
}

export interface BurstResult {
  allowed: number
  rejected: number
  /** Statuses other than 200 and 429 (must be 0). */
  other: number
  /** What one in-memory process admits for the same burst. */
  expected: number
}

const workerPath = fileURLToPath(new URL('./exactness-worker.ts', import.meta.url))

/** Starts `processes` workers, fires `requests` concurrent requests round-robin, stops the workers. */
export async function runBurst (setup: WorkerSetup, processes = 4, requests = 1000): Promise<BurstResult> {
  const workers: ChildProcess[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < processes; i++) {
      const child = fork(workerPath, [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, TRAFFIK_WORKER: JSON.stringify(setup) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc']
      })
      workers.push(child)
      ports.push(await new Promise<number>((resolve, reject) => {
        child.once('message', (m) => { resolve((m as { port: number }).port) })
        child.once('exit', (code) => { reject(new Error(`worker exited with ${code} before listening`)) })
      }))
    }
    const agent = new Agent({ keepAlive: true, maxSockets: 64 })
    const statuses = await Promise.all(Array.from({ length: requests }, async (_, i) => await get(ports[i % ports.length]!, agent)))
    agent.destroy()
    return {
      allowed: statuses.filter((s) => s === 200).length,
      rejected: statuses.filter((s) => s === 429).length,
      other: statuses.filter((s) => s !== 200 && s !== 429).length,
      expected: inMemoryAdmits(setup, requests)
    }
  } finally {
    await Promise.all(workers.map(async (child) => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.send('stop')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }))
  }
}

/** How many of `requests` back-to-back hits one in-memory process admits, at one instant. */
export function inMemoryAdmits (setup: WorkerSetup, requests: number): number {
  const backend = new InMemoryBackend({ clock: new ManualClock() })
  const strategy = makeStrategy(setup.strategy)
  const { limit, windowMs } = parseRate(setup.rate)
  let allowed = 0
  for (let i = 0; i < requests; i++) {
    const [decision] = backend.evaluate([{ strategy, key: 'k', limit, windowMs, cost: 1 }], 'hit')
    if (decision!.allowed) allowed++
  }
  return allowed
}

async function get (port: number, agent: Agent): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/burst', agent }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.on('error', reject)
    req.end()
  })
}
