/**
 * Multi-process exactness: N Fastify processes share one backend; a burst of concurrent requests
 * for one identifier is spread over them; the number allowed must equal what one in-memory process
 * admits for the same burst (computed here with a fixed clock).
 */
import { fork, type ChildProcess } from 'node:child_process'
import cluster from 'node:cluster'
import { request as httpRequest, Agent } from 'node:http'
import { fileURLToPath } from 'node:url'
import { InMemoryBackend, ManualClock, parseRate } from '../../lib/index.js'
import { makeStrategy, type BackendSetup, type StrategySetup } from './backend-factory.js'

export interface WorkerSetup {
  backend: BackendSetup
  strategy: StrategySetup
  rate: string
  /** The throttle's `lease` option (docs/leases.md); absent: off. */
  lease?: boolean | Record<string, number>
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

interface Worker { child: ChildProcess, port: number }

/**
 * Workers are started once per test process and reused by every burst (starting four processes
 * per strategy dominated the run time). They do not keep the test process alive, and they stop
 * when it exits (the IPC channel closes).
 */
const pools = new Map<string, Promise<Worker[]>>()
let nextBurst = 0

/**
 * ClusterBackend's processes must be node:cluster workers of this process (which then holds
 * their shared state: the test attaches the primary); every other backend's are plain children.
 */
type Launcher = 'fork' | 'cluster'

async function workers (processes: number, launcher: Launcher): Promise<Worker[]> {
  const key = `${launcher}:${processes}`
  let pool = pools.get(key)
  if (pool === undefined) {
    pool = Promise.all(Array.from({ length: processes }, async () => await startWorker(launcher)))
    pools.set(key, pool)
  }
  return await pool
}

function spawn (launcher: Launcher): ChildProcess {
  if (launcher === 'fork') return fork(workerPath, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  cluster.setupPrimary({ exec: workerPath, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return cluster.fork().process
}

async function startWorker (launcher: Launcher): Promise<Worker> {
  const child = spawn(launcher)
  const port = await new Promise<number>((resolve, reject) => {
    const onMessage = (m: { type: string, port: number }): void => {
      if (m.type !== 'listening') return
      child.off('message', onMessage)
      resolve(m.port)
    }
    child.on('message', onMessage)
    child.once('exit', (code) => { reject(new Error(`worker exited with ${code} before listening`)) })
  })
  child.unref()
  ;(child.channel as { unref?: () => void } | undefined)?.unref?.()
  return { child, port }
}

async function configure (worker: Worker, id: string, setup: WorkerSetup): Promise<void> {
  const channel = worker.child.channel as { ref?: () => void, unref?: () => void } | undefined
  channel?.ref?.() // keep the test process alive until the worker answers
  try {
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { type: string, id: string, error?: string }): void => {
        if (m.type !== 'configured' || m.id !== id) return
        worker.child.off('message', onMessage)
        if (m.error === undefined) resolve()
        else reject(new Error(`worker could not configure ${JSON.stringify(setup)}: ${m.error}`))
      }
      worker.child.on('message', onMessage)
      worker.child.send({ type: 'configure', id, setup })
    })
  } finally {
    channel?.unref?.()
  }
}

/** Fires `requests` concurrent requests round-robin over `processes` workers sharing the backend of `setup`. */
export async function runBurst (setup: WorkerSetup, processes = 4, requests = 1000): Promise<BurstResult> {
  const pool = await workers(processes, setup.backend.kind === 'ClusterBackend' ? 'cluster' : 'fork')
  const id = `${process.pid}-${++nextBurst}-${Math.random().toString(36).slice(2, 8)}`
  await Promise.all(pool.map(async (worker) => { await configure(worker, id, setup) }))
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  try {
    const statuses = await Promise.all(Array.from({ length: requests }, async (_, i) => await get(pool[i % pool.length]!.port, `/burst/${id}`, agent)))
    return {
      allowed: statuses.filter((s) => s === 200).length,
      rejected: statuses.filter((s) => s === 429).length,
      other: statuses.filter((s) => s !== 200 && s !== 429).length,
      expected: inMemoryAdmits(setup, requests)
    }
  } finally {
    agent.destroy()
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

async function get (port: number, path: string, agent: Agent): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.on('error', reject)
    req.end()
  })
}
