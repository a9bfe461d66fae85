/**
 * Property-based fuzzing of the plugin: random sequences of "build an app with random (valid)
 * route limits", requests, throttle.hit/check/reset, plugin-wide reset, backend failures and
 * hangs injected on command, and close-and-rebuild. Whatever happens, requests get only the
 * answers their `onError` policy defines, the throttle API resolves or rejects with a coded
 * error, no rejection goes unhandled, and nothing (timers, handles) is left after close.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import fc from 'fast-check'
import t from 'tap'
import {
  CircuitBreaker, EXEMPTED, FixedWindow, GCRA, InMemoryBackend, LeakyBucket, SlidingWindowCounter, SlidingWindowLog,
  TokenBucket, TokenBucketWithDebt, failover, retry, traffik, type ThrottleOptions
} from '../../lib/index.js'
import { CommandedBackend, type BackendBehaviour } from './commanded-backend.js'

const unhandled: unknown[] = []
process.on('unhandledRejection', (reason) => { unhandled.push(reason) })

type Policy = 'allow' | 'throttle' | 'raise' | 'failover' | 'retry-allow'

interface RouteSpec {
  policy: Policy
  rate: string
  strategy: number
  headers: 'legacy' | 'draft-7' | 'draft-8' | false
  cost: number | 'fn'
  identifier: 'ip' | 'header' | 'exempt-some'
  limits: 1 | 2
}

const STRATEGIES = [
  () => new FixedWindow(), () => new SlidingWindowCounter(), () => new SlidingWindowLog(), () => new TokenBucket(),
  () => new TokenBucketWithDebt({ maxDebt: 2 }), () => new LeakyBucket({ burst: 2 }), () => new GCRA({ burst: 3 })
]

const routeSpec: fc.Arbitrary<RouteSpec> = fc.record({
  policy: fc.constantFrom<Policy>('allow', 'throttle', 'raise', 'failover', 'retry-allow'),
  rate: fc.constantFrom('3/s', '5/min', '2/200ms', '10/hour', '0/s'),
  strategy: fc.integer({ min: 0, max: STRATEGIES.length - 1 }),
  headers: fc.constantFrom('legacy' as const, 'draft-7' as const, 'draft-8' as const, false as const),
  cost: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant('fn' as const)),
  identifier: fc.constantFrom('ip' as const, 'header' as const, 'exempt-some' as const),
  limits: fc.constantFrom(1 as const, 2 as const)
})

type Command =
  | { kind: 'build', routes: RouteSpec[], hook: 'preHandler' | 'onRequest' }
  | { kind: 'request', route: number, client: number }
  | { kind: 'api', route: number, client: number, method: 'hit' | 'check' | 'stat' | 'reset-one' | 'reset-all' }
  | { kind: 'reset-plugin' }
  | { kind: 'behave', behaviour: BackendBehaviour }
  | { kind: 'close' }

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('build' as const), routes: fc.array(routeSpec, { minLength: 1, maxLength: 3 }), hook: fc.constantFrom('preHandler' as const, 'onRequest' as const) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('request' as const), route: fc.nat(5), client: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('api' as const), route: fc.nat(5), client: fc.nat(3), method: fc.constantFrom('hit' as const, 'check' as const, 'stat' as const, 'reset-one' as const, 'reset-all' as const) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reset-plugin' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('behave' as const), behaviour: fc.constantFrom<BackendBehaviour>('ok', 'fail', 'hang') }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'close' as const }) }
)

function limitOptions (spec: RouteSpec, i: number): ThrottleOptions {
  const onError: ThrottleOptions['onError'] =
    spec.policy === 'failover'
      ? failover({ backend: new InMemoryBackend(), breaker: new CircuitBreaker({ failureThreshold: 2, recoveryTimeMs: 50 }) })
      : spec.policy === 'retry-allow'
        ? [retry({ retryOn: () => true, retries: 1, delayMs: 1 }), 'allow']
        : spec.policy
  return {
    uid: `route-${i}-${Math.random().toString(36).slice(2, 6)}`,
    rate: spec.rate,
    strategy: STRATEGIES[spec.strategy]!(),
    headers: spec.headers,
    cost: spec.cost === 'fn' ? async (request) => Number(request.headers['x-cost'] ?? 1) : spec.cost,
    identifier: spec.identifier === 'ip'
      ? undefined
      : (request) => {
          const client = String(request.headers['x-client'])
          return spec.identifier === 'exempt-some' && client === 'client-0' ? EXEMPTED : client
        },
    onError
  }
}

/** The answers a route may give: what its policy says for a failing backend, else 200 or 429. */
function allowedStatuses (spec: RouteSpec, behaviour: BackendBehaviour): number[] {
  if (behaviour === 'ok') return [200, 429]
  switch (spec.policy) {
    case 'allow': return spec.rate === '0/s' ? [200, 429] : [200]
    case 'retry-allow': return spec.rate === '0/s' ? [200, 429] : [200]
    case 'throttle': return [200, 429] // 200 only when the request is exempt or costs nothing on a fresh key
    case 'raise': return [200, 429, 503]
    case 'failover': return [200, 429]
  }
}

interface World {
  app: FastifyInstance | undefined
  backend: CommandedBackend | undefined
  routes: RouteSpec[]
  uids: string[]
  behaviour: BackendBehaviour
  problems: string[]
}

async function build (world: World, routes: RouteSpec[], hook: 'preHandler' | 'onRequest'): Promise<void> {
  await close(world)
  const backend = new CommandedBackend({ timeoutMs: 25 })
  backend.behaviour = world.behaviour
  const app = Fastify()
  await app.register(traffik, { backend, hook })
  world.uids = []
  routes.forEach((spec, i) => {
    const limits = Array.from({ length: spec.limits }, (_, j) => limitOptions(spec, i * 10 + j))
    world.uids.push(limits[0]!.uid!)
    app.get(`/r${i}`, { config: { rateLimit: spec.limits === 1 ? limits[0]! : limits } }, async () => ({ ok: true }))
  })
  await app.ready()
  world.app = app
  world.backend = backend
  world.routes = routes
}

async function close (world: World): Promise<void> {
  if (world.app === undefined) return
  await world.app.close()
  world.app = undefined
  world.backend = undefined
}

function isCoded (error: unknown): boolean {
  return /^TRAFFIK_ERR_/.test(String((error as { code?: unknown })?.code))
}

async function step (world: World, cmd: Command): Promise<void> {
  switch (cmd.kind) {
    case 'build': return await build(world, cmd.routes, cmd.hook)
    case 'close': return await close(world)
    case 'behave':
      world.behaviour = cmd.behaviour
      if (world.backend !== undefined) world.backend.behaviour = cmd.behaviour
      return
    case 'reset-plugin':
      if (world.app === undefined) return
      try {
        await world.app.throttle.reset()
      } catch (error) {
        if (!isCoded(error)) world.problems.push(`throttle.reset() threw an uncoded error: ${String(error)}`)
      }
      return
    case 'request': {
      if (world.app === undefined || world.routes.length === 0) return
      const index = cmd.route % world.routes.length
      const spec = world.routes[index]!
      const behaviour = world.behaviour
      const res = await world.app.inject({ url: `/r${index}`, headers: { 'x-client': `client-${cmd.client}`, 'x-cost': String(cmd.client % 3) } })
      const allowed = allowedStatuses(spec, behaviour)
      if (!allowed.includes(res.statusCode)) {
        world.problems.push(`route ${JSON.stringify(spec)} with a backend that is '${behaviour}' answered ${res.statusCode} ${res.body}`)
      }
      if (res.statusCode === 503 && !/TRAFFIK_ERR_BACKEND/.test(res.json().code)) world.problems.push(`503 without a backend code: ${res.body}`)
      return
    }
    case 'api': {
      if (world.app === undefined || world.uids.length === 0) return
      const throttle = world.app.throttle.get(world.uids[cmd.route % world.uids.length]!)
      if (throttle === undefined) {
        world.problems.push('a route throttle is missing from fastify.throttle')
        return
      }
      const request = { ip: `10.0.0.${cmd.client}`, headers: { 'x-client': `client-${cmd.client}` }, method: 'GET', url: '/' }
      try {
        if (cmd.method === 'reset-one') await throttle.reset(request as never)
        else if (cmd.method === 'reset-all') await throttle.reset()
        else {
          const decision = await throttle[cmd.method](request as never)
          const finite = Number.isFinite(decision.limit)
          if (finite && !(Number.isInteger(decision.remaining) && decision.remaining >= 0 && decision.remaining <= decision.limit)) {
            world.problems.push(`${cmd.method} gave remaining ${decision.remaining} of ${decision.limit}`)
          }
        }
      } catch (error) {
        if (!isCoded(error)) world.problems.push(`throttle.${cmd.method} threw an uncoded error: ${String(error)}`)
      }
    }
  }
}

function resourceCounts (): Map<string, number> {
  const counts = new Map<string, number>()
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1)
  return counts
}

/** Kinds of resources (timers, sockets, ...) held beyond `baseline`, once things settled. */
async function leftovers (baseline: Map<string, number>): Promise<string[]> {
  let extra: string[] = []
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    extra = [...resourceCounts()].filter(([kind, n]) => n > (baseline.get(kind) ?? 0)).map(([kind, n]) => `${kind} x${n - (baseline.get(kind) ?? 0)}`)
    if (extra.length === 0) return extra
  }
  return extra
}

t.test('random sequences of routes, requests, API calls, failures and rebuilds', async (t) => {
  const baseline = resourceCounts()
  let runs = 0
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 40 }), async (commands) => {
    runs++
    const world: World = { app: undefined, backend: undefined, routes: [], uids: [], behaviour: 'ok', problems: [] }
    try {
      for (const cmd of commands) {
        try {
          await step(world, cmd)
        } catch (error) {
          world.problems.push(`${cmd.kind} threw out of the plugin: ${(error as Error).stack ?? String(error)}`)
        }
      }
    } finally {
      await close(world).catch((error: unknown) => { world.problems.push(`close threw: ${String(error)}`) })
    }
    // Hung calls end at close, retries and lock polls within a few ms; then nothing may be left.
    // Polled for up to 1 s, so a timer that is about to fire is not taken for a leak.
    const left = await leftovers(baseline)
    if (left.length > 0) world.problems.push(`resources left after close: ${left.join(', ')}`)
    if (unhandled.length > 0) world.problems.push(`unhandled rejections: ${unhandled.map(String).join('; ')}`)
    if (world.problems.length > 0) throw new Error(world.problems.join('\n'))
  }), { numRuns: 50, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) })
  t.equal(runs >= 50, true, `${runs} random sequences ran`)
  t.same(unhandled, [], 'no unhandled rejections')
})
