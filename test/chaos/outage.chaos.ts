/**
 * Backend outages under steady load (chaos suite, `npm run test:chaos`). For Redis and memcached:
 * the server is killed (SIGKILL) and restarted on the same port, hung (SIGSTOP / SIGCONT),
 * dropped while requests are in flight (SIGSTOP, then SIGKILL), stopped and restarted (SIGTERM),
 * and killed under `failover({ backend, breaker })`. The app runs in its own process; this
 * process sends ~200 requests/s over loopback. Asserted: every request is answered as its
 * `onError` policy says (allow → 200, throttle → 429, raise → 503 through setErrorHandler) within
 * `timeoutMs` + 250 ms in the app process (+ 750 ms as seen by the load generator, whose own event
 * loop shares a noisy 2-core machine), no unhandled rejections in the app, limits apply again within 1 s of
 * the server returning, failover moves traffic to the fallback and back, and after `app.close()`
 * nothing is left active and the process exits by itself.
 */
import t, { type Test } from 'tap'
import { roomInWindow } from '../helpers/window-room.js'
import { startMemcached, startRedis, uniqueNamespace, type PausableServer, type RunningServer } from '../../scripts/support/services.js'
import {
  countStatuses, getStatus, recordResult, sleep, startApp, steadyLoad, type Answer, type ScenarioResult
} from './harness.js'

const TIMEOUT_MS = 250
const MARGIN_MS = 250
const CLIENT_MARGIN_MS = 750
const RATE = 200
const FAULT_AT_MS = 1000
const OUTAGE_MS = 2000
const DURATION_MS = 5000
const RECOVERY_BOUND_MS = 1000
const BREAKER = { failureThreshold: 3, recoveryTimeMs: 500 }

type Kind = 'redis' | 'memcached'

interface Fault {
  name: string
  /** Breaks the server; resolves when the fault is in place. */
  inject(server: PausableServer): Promise<void>
  /** Brings the server back (the same or a new process on the same port). */
  restore(server: PausableServer, kind: Kind): Promise<PausableServer>
}

async function start (kind: Kind, port?: number): Promise<PausableServer> {
  return kind === 'redis' ? await startRedis({ port }) : await startMemcached({ port })
}

function signal (server: RunningServer, name: NodeJS.Signals): void {
  process.kill(server.process.pid!, name)
}

async function killed (server: RunningServer): Promise<void> {
  if (server.process.exitCode !== null || server.process.signalCode !== null) return
  await new Promise<void>((resolve) => server.process.once('exit', () => { resolve() }))
}

const faults: Fault[] = [
  {
    name: 'SIGKILL, restart on the same port',
    inject: async (server) => {
      signal(server, 'SIGKILL')
      await killed(server)
    },
    restore: async (server, kind) => await start(kind, server.port)
  },
  {
    name: 'SIGSTOP (hang), then SIGCONT',
    inject: async (server) => { await server.pause() },
    restore: async (server) => {
      await server.resume()
      return server
    }
  },
  {
    name: 'dropped mid-request (SIGSTOP, SIGKILL), restart',
    inject: async (server) => {
      await server.pause()
      await sleep(150) // requests pile up unanswered on the open connection...
      signal(server, 'SIGKILL') // ...and the connection dies under them
      await killed(server)
    },
    restore: async (server, kind) => await start(kind, server.port)
  },
  {
    name: 'SIGTERM stop, restart on the same port',
    inject: async (server) => { await server.stop() },
    restore: async (server, kind) => await start(kind, server.port)
  }
]

const POLICY_STATUSES: Record<string, number[]> = {
  '/allow': [200],
  '/throttle': [200, 429],
  '/raise': [200, 503],
  '/failover': [200]
}

function byRoute (answers: readonly Answer[]): Record<string, Record<string, number>> {
  const routes: Record<string, Record<string, number>> = {}
  for (const route of new Set(answers.map((a) => a.route))) routes[route] = countStatuses(answers.filter((a) => a.route === route))
  return routes
}

interface Run { answers: Answer[], faultAt: number, backAt: number }

/** Runs the steady load; injects the fault at FAULT_AT_MS and restores it OUTAGE_MS later. */
async function underLoad (port: number, routes: string[], server: PausableServer, kind: Kind, fault: Fault): Promise<Run & { server: PausableServer }> {
  const t0 = performance.now()
  const load = steadyLoad({ port, routes, ratePerSecond: RATE, durationMs: DURATION_MS })
  await sleep(FAULT_AT_MS)
  const faultAt = performance.now() - t0
  await fault.inject(server)
  await sleep(Math.max(0, OUTAGE_MS - (performance.now() - t0 - faultAt)))
  const back = await fault.restore(server, kind)
  const backAt = performance.now() - t0
  const answers = await load
  return { answers, faultAt, backAt, server: back }
}

/** ms from `backAt` to the first `route` answer that reached the backend again (status 200 on a 'raise' route). */
function recoveryOf (answers: readonly Answer[], route: string, backAt: number): number | undefined {
  const first = answers.find((a) => a.route === route && a.sentAt >= backAt && a.status === 200)
  return first === undefined ? undefined : first.sentAt - backAt
}

/**
 * The bound is asserted on the time each request spent in the app process (what the limiter
 * controls). The load generator's view adds its own event-loop delays on a shared 2-core
 * machine, so it gets a wider bound.
 */
function latencies (t: Test, answers: readonly Answer[]): { maxLatency: number, maxServer: number } {
  const maxServer = Math.max(...answers.map((a) => a.serverMs))
  const maxLatency = Math.max(...answers.map((a) => a.latencyMs))
  t.ok(answers.every((a) => a.serverMs >= 0), 'every answer carries the time the app spent on it')
  t.ok(maxServer <= TIMEOUT_MS + MARGIN_MS, `slowest answer in the app ${maxServer.toFixed(0)} ms (bound ${TIMEOUT_MS + MARGIN_MS} ms)`)
  t.ok(maxLatency <= TIMEOUT_MS + CLIENT_MARGIN_MS, `slowest answer seen by the load generator ${maxLatency.toFixed(0)} ms (bound ${TIMEOUT_MS + CLIENT_MARGIN_MS} ms)`)
  return { maxLatency, maxServer }
}

async function tightLimitHolds (t: Test, port: number): Promise<void> {
  const client = `tight-${Math.random().toString(36).slice(2)}`
  const statuses: number[] = []
  // Seven requests in one minute window of the default FixedWindow (see test/helpers/window-room.ts).
  await roomInWindow(60_000, 2000)
  for (let i = 0; i < 7; i++) statuses.push(await getStatus(port, '/tight', client))
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429], 'after recovery the backend limits exactly again (5/min)')
}

async function closeCleanly (t: Test, app: Awaited<ReturnType<typeof startApp>>): Promise<void> {
  const { resources, exitedAlone } = await app.close()
  t.same(resources, [], `nothing active in the app process after app.close() (${resources.join(', ') || 'none'})`)
  t.ok(exitedAlone, 'the app process exited by itself')
  t.same(app.unhandled, [], 'no unhandled rejections or uncaught exceptions in the app process')
}

for (const kind of ['redis', 'memcached'] as const) {
  for (const fault of faults) {
    t.test(`${kind}: ${fault.name}`, async (t) => {
      let server = await start(kind)
      t.teardown(async () => { await server.stop() })
      const address = kind === 'redis' ? `redis://${server.host}:${server.port}` : `${server.host}:${server.port}`
      const app = await startApp({ kind, address, namespace: uniqueNamespace('chaos'), timeoutMs: TIMEOUT_MS, breaker: BREAKER })
      t.teardown(() => { if (app.child.exitCode === null) app.child.kill('SIGKILL') })

      const routes = ['/allow', '/throttle', '/raise']
      const run = await underLoad(app.port, routes, server, kind, fault)
      server = run.server
      const { answers, faultAt, backAt } = run

      const wrong = answers.filter((a) => !POLICY_STATUSES[a.route]!.includes(a.status))
      t.same(wrong.slice(0, 5), [], `every answer follows its policy (${wrong.length} did not)`)
      const during = answers.filter((a) => a.sentAt >= faultAt && a.sentAt < backAt)
      const duringCounts = byRoute(during)
      t.ok((duringCounts['/throttle']?.['429'] ?? 0) > 0, `the outage was felt: 'throttle' answered 429 (${JSON.stringify(duringCounts['/throttle'])})`)
      t.ok((duringCounts['/raise']?.['503'] ?? 0) > 0, `'raise' answered 503 (${JSON.stringify(duringCounts['/raise'])})`)
      const { maxLatency, maxServer } = latencies(t, answers)
      const recoveryMs = recoveryOf(answers, '/raise', backAt)
      t.ok(recoveryMs !== undefined && recoveryMs <= RECOVERY_BOUND_MS, `decisions reach the backend again ${recoveryMs?.toFixed(0)} ms after it is back`)
      if (recoveryMs !== undefined) {
        const relapses = answers.filter((a) => a.route === '/raise' && a.sentAt > backAt + recoveryMs + 250 && a.status !== 200)
        t.equal(relapses.length, 0, 'and stay there')
      }
      await tightLimitHolds(t, app.port)
      await closeCleanly(t, app)

      const result: ScenarioResult = {
        backend: kind, scenario: fault.name, answers: byRoute(answers), duringFault: duringCounts, maxLatencyMs: Math.round(maxLatency), maxServerMs: Math.round(maxServer), recoveryMs: recoveryMs === undefined ? undefined : Math.round(recoveryMs)
      }
      recordResult(result)
    })
  }

  t.test(`${kind}: failover to InMemoryBackend behind a CircuitBreaker, SIGKILL then restart`, async (t) => {
    let server = await start(kind)
    t.teardown(async () => { await server.stop() })
    const address = kind === 'redis' ? `redis://${server.host}:${server.port}` : `${server.host}:${server.port}`
    const app = await startApp({ kind, address, namespace: uniqueNamespace('chaos'), timeoutMs: TIMEOUT_MS, breaker: BREAKER })
    t.teardown(() => { if (app.child.exitCode === null) app.child.kill('SIGKILL') })

    const run = await underLoad(app.port, ['/failover', '/raise'], server, kind, faults[0]!)
    server = run.server
    const { answers, faultAt, backAt } = run
    const failovers = answers.filter((a) => a.route === '/failover')
    t.same(countStatuses(failovers), { 200: failovers.length }, 'every failover request is answered 200 (by Redis/memcached or the fallback)')
    const opened = failovers.find((a) => a.sentAt >= faultAt && a.breaker === 'open')
    t.ok(opened !== undefined, `the breaker opened ${opened === undefined ? '-' : (opened.sentAt - faultAt).toFixed(0)} ms into the outage: traffic moved to the fallback`)
    const openDuring = failovers.filter((a) => a.sentAt >= faultAt && a.sentAt < backAt && a.breaker !== 'closed').length
    const closedAgain = failovers.find((a) => a.sentAt >= backAt && a.breaker === 'closed')
    const returnMs = closedAgain === undefined ? undefined : closedAgain.sentAt - backAt
    t.ok(returnMs !== undefined && returnMs <= BREAKER.recoveryTimeMs + RECOVERY_BOUND_MS, `traffic back on the primary ${returnMs?.toFixed(0)} ms after it returned (bound: recoveryTimeMs + 1 s)`)
    const { maxLatency, maxServer } = latencies(t, answers)
    await tightLimitHolds(t, app.port)
    await closeCleanly(t, app)
    recordResult({
      backend: kind,
      scenario: 'failover + breaker: SIGKILL, restart',
      answers: byRoute(answers),
      duringFault: byRoute(answers.filter((a) => a.sentAt >= faultAt && a.sentAt < backAt)),
      maxLatencyMs: Math.round(maxLatency),
      maxServerMs: Math.round(maxServer),
      recoveryMs: returnMs === undefined ? undefined : Math.round(returnMs),
      notes: `${openDuring} failover answers given by the fallback while the breaker was not closed; recovery = breaker closed again`
    })
  })
}
