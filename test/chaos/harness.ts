/**
 * Chaos harness: starts the app under test in its own process (app-worker.ts), drives it with a
 * steady, bounded HTTP load from this process, and records every answer (route, status, latency,
 * breaker state) with the time it was sent. Results of each scenario are appended as one JSON
 * line to $TRAFFIK_CHAOS_RESULTS so `npm run test:chaos` can print them as a table.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { Agent, request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { ScenarioResult } from '../../scripts/support/chaos-results.js'
import type { ChaosAppSetup, WorkerMessage } from './app-worker.js'

const workerPath = fileURLToPath(new URL('./app-worker.ts', import.meta.url))

export interface ChaosApp {
  port: number
  child: ChildProcess
  /** Unhandled rejections / uncaught exceptions the app reported. */
  unhandled: string[]
  /** Closes the app; resolves what was still active after close and whether the process exited by itself. */
  close(): Promise<{ resources: string[], exitedAlone: boolean }>
}

export async function startApp (setup: ChaosAppSetup): Promise<ChaosApp> {
  const child = fork(workerPath, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TRAFFIK_CHAOS_APP: JSON.stringify(setup) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const unhandled: string[] = []
  let closed: ((resources: string[]) => void) | undefined
  child.on('message', (message: WorkerMessage) => {
    if (message.type === 'unhandled') unhandled.push(message.reason)
    if (message.type === 'closed') closed?.(message.resources)
  })
  const port = await new Promise<number>((resolve, reject) => {
    const onMessage = (message: WorkerMessage): void => {
      if (message.type === 'listening') {
        child.off('message', onMessage)
        resolve(message.port)
      }
    }
    child.on('message', onMessage)
    child.once('exit', (code) => { reject(new Error(`app worker exited with ${code} before listening`)) })
  })
  return {
    port,
    child,
    unhandled,
    close: async () => {
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve()
        else child.once('exit', () => { resolve() })
      })
      const resources = await new Promise<string[]>((resolve) => {
        closed = resolve
        child.send('close')
      })
      const alone = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => { resolve(false) }, 5000))])
      if (!alone) {
        child.kill('SIGKILL')
        await exited
      }
      return { resources, exitedAlone: alone }
    }
  }
}

export interface Answer {
  route: string
  /** When it was sent, in ms since the load started. */
  sentAt: number
  status: number
  /** Seen by the load generator: send to last byte. */
  latencyMs: number
  /** Spent in the app process (its `x-elapsed-ms`); -1 without an answer. */
  serverMs: number
  breaker?: string
}

export interface LoadOptions {
  port: number
  routes: readonly string[]
  /** Requests per second (steady pace). */
  ratePerSecond: number
  durationMs: number
  /** Clients the requests rotate over (x-client header). */
  clients?: number
  /** Called with the elapsed time on every tick, to schedule faults. */
  onTick?: (elapsedMs: number) => void
}

/** Sends `ratePerSecond × durationMs` requests at a steady pace and resolves every answer. */
export async function steadyLoad (options: LoadOptions): Promise<Answer[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 })
  const total = Math.round(options.ratePerSecond * options.durationMs / 1000)
  const intervalMs = 1000 / options.ratePerSecond
  const clients = options.clients ?? 20
  const started = performance.now()
  const pending: Array<Promise<Answer>> = []
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = performance.now() - started
      options.onTick?.(elapsed)
      // Catch up to the schedule (timers on a busy machine fire late), never beyond the total.
      while (pending.length < total && pending.length * intervalMs <= elapsed) {
        const i = pending.length
        pending.push(send(options.port, options.routes[i % options.routes.length]!, `c${i % clients}`, agent, started))
      }
      if (pending.length >= total) {
        clearInterval(timer)
        resolve()
      }
    }
    const timer = setInterval(tick, Math.max(1, Math.floor(intervalMs)))
  })
  const answers = await Promise.all(pending)
  agent.destroy()
  return answers
}

async function send (port: number, route: string, client: string, agent: Agent, started: number): Promise<Answer> {
  const sentAt = performance.now()
  return await new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: route, agent, headers: { 'x-client': client } }, (res) => {
      res.resume()
      res.on('end', () => {
        const breaker = res.headers['x-breaker']
        const serverMs = Number(res.headers['x-elapsed-ms'] ?? -1)
        resolve({ route, sentAt: sentAt - started, status: res.statusCode ?? 0, latencyMs: performance.now() - sentAt, serverMs, breaker: typeof breaker === 'string' ? breaker : undefined })
      })
    })
    // A transport error is an answer too (status 0): the test fails on it.
    req.on('error', () => { resolve({ route, sentAt: sentAt - started, status: 0, latencyMs: performance.now() - sentAt, serverMs: -1 }) })
    req.end()
  })
}

/** GET `route` once; resolves the status. */
export async function getStatus (port: number, route: string, client: string): Promise<number> {
  return await new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: route, agent: false, headers: { 'x-client': client } }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.on('error', () => { resolve(0) })
    req.end()
  })
}

/** Counts of each status, e.g. `{ 200: 310, 429: 40 }`. */
export function countStatuses (answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1
  return counts
}

export type { ScenarioResult }

export function recordResult (result: ScenarioResult): void {
  const file = process.env.TRAFFIK_CHAOS_RESULTS
  if (file !== undefined && file !== '') appendFileSync(file, JSON.stringify(result) + '\n')
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
