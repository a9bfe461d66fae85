/**
 * One client through two escalations and a ban, over HTTP, on InMemory (a ManualClock, minutes),
 * Redis and Memcached (real servers, real time, so the durations are short): the statuses, the
 * block length each offence starts (exact, read from the decision that started it), `onBanReach`
 * once, and on Redis one round trip per decision (INFO commandstats on a private server).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import {
  InMemoryBackend, ManualClock, MemcachedBackend, RedisBackend, traffik,
  type BanInfo, type DecisionEvent, type ThrottleBackend, type ThrottleOptions
} from '../../lib/index.js'
import { sharedMemcachedServers, uniqueNamespace } from '../../scripts/support/services.js'
import { privateRedis, redisCommandCounts, redisScriptCalls } from '../../scripts/support/redis-commands.js'
import { ALIGNED_START } from '../helpers/build-app.js'

interface Step { status: number, retryAfterMs: number, offences?: number, offence?: boolean, banned?: boolean }

interface Rig {
  app: FastifyInstance
  bans: BanInfo[]
  /** Sends one request; returns its status and the decision the throttle made for it. */
  send(): Promise<Step>
}

async function rig (t: Test, backend: ThrottleBackend, options: ThrottleOptions): Promise<Rig> {
  const bans: BanInfo[] = []
  let last: DecisionEvent | undefined
  const app = Fastify()
  await app.register(traffik, { backend, onDecision: (event) => { last = event } })
  const escalation = { ...options.escalation, onBanReach: (_request: unknown, info: BanInfo) => { bans.push(info) } }
  app.get('/login', { config: { rateLimit: { ...options, escalation, identifier: () => 'client-1' } } }, async () => 'ok')
  await app.ready()
  t.teardown(async () => { await app.close() })
  return {
    app,
    bans,
    async send () {
      last = undefined
      const response = await app.inject('/login')
      const d = last!.decision!
      const step: Step = { status: response.statusCode, retryAfterMs: d.retryAfterMs }
      if (d.escalation !== undefined) Object.assign(step, d.escalation)
      return step
    }
  }
}

t.test('InMemory: 1 min, then 5 min, then a 15 min ban (403) on the third offence', async (t) => {
  const clock = new ManualClock(ALIGNED_START)
  const MIN = 60_000
  const { send, bans } = await rig(t, new InMemoryBackend({ clock }), {
    rate: '2/30s',
    escalation: { blocks: [MIN, 5 * MIN], periodMs: 60 * MIN, ban: { after: 3, durationMs: 15 * MIN } }
  })
  t.same([await send(), await send()].map((s) => s.status), [200, 200])
  t.same(await send(), { status: 429, retryAfterMs: MIN, offences: 1, offence: true, banned: false }, 'offence 1 blocks for 1 min')
  clock.advance(30_000)
  t.same(await send(), { status: 429, retryAfterMs: 30_000, offences: 1, offence: false, banned: false }, 'inside the block: rejected, not a new offence')
  clock.advance(30_000)
  t.same([await send(), await send()].map((s) => s.status), [200, 200], 'the block is over: the limit admits again')
  t.same(await send(), { status: 429, retryAfterMs: 5 * MIN, offences: 2, offence: true, banned: false }, 'offence 2 blocks for 5 min')
  clock.advance(5 * MIN - 1)
  t.equal((await send()).status, 429, 'one ms before the end of the block')
  clock.advance(1)
  t.same([await send(), await send()].map((s) => s.status), [200, 200])
  t.same(await send(), { status: 403, retryAfterMs: 15 * MIN, offences: 3, offence: true, banned: true }, 'offence 3 bans for 15 min')
  t.equal(bans.length, 1, 'onBanReach once, on the offence that starts the ban')
  t.equal(bans[0]!.retryAfterSeconds, 900)
  clock.advance(10 * MIN)
  t.same(await send(), { status: 403, retryAfterMs: 5 * MIN, offences: 3, offence: false, banned: true }, 'still banned')
  t.equal(bans.length, 1, 'requests during the ban do not call onBanReach again')
  clock.advance(5 * MIN)
  t.equal((await send()).status, 200, 'the ban is over')
  clock.advance(60 * MIN)
  t.same([await send(), await send()].map((s) => s.status), [200, 200])
  t.same(await send(), { status: 429, retryAfterMs: MIN, offences: 1, offence: true, banned: false }, 'after the period the count starts again at 1')
})

/**
 * Real time on a real server: window 100 ms with limit 2, blocks of 400 then 800 ms, a ban of
 * 1500 ms on the third offence. After a block the client sends until it is rejected again (a
 * window edge may admit a few more); each offence reports its block length exactly.
 */
async function realTimeline (t: Test, backend: ThrottleBackend, decisions?: () => Promise<number>): Promise<void> {
  const { send, bans } = await rig(t, backend, {
    rate: { limit: 2, windowMs: 100 },
    escalation: { blocks: [400, 800], periodMs: 60_000, ban: { after: 3, durationMs: 1500 } }
  })
  const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
  let sent = 0
  const untilRejected = async (): Promise<Step> => {
    for (let i = 0; i < 100; i++) {
      const step = await send()
      sent++
      if (step.status !== 200) return step
    }
    throw new Error('never rejected')
  }
  const expected = [
    { status: 429, retryAfterMs: 400, offences: 1, offence: true, banned: false },
    { status: 429, retryAfterMs: 800, offences: 2, offence: true, banned: false },
    { status: 403, retryAfterMs: 1500, offences: 3, offence: true, banned: true }
  ]
  const waits = [400, 800]
  for (let k = 0; k < 3; k++) {
    t.same(await untilRejected(), expected[k], `offence ${k + 1}`)
    const inside = await send()
    sent++
    t.equal(inside.status, expected[k]!.status, 'the next request is answered by the block in force')
    t.equal(inside.offence, false, 'and is not a new offence')
    t.ok(inside.retryAfterMs > 0 && inside.retryAfterMs <= expected[k]!.retryAfterMs, 'whose wait only shrinks')
    if (k < 2) await sleep(waits[k]! + 20)
  }
  t.equal(bans.length, 1, 'onBanReach once')
  if (decisions !== undefined) t.equal(await decisions(), sent, `one script call per decision (${sent} decisions)`)
}

/**
 * Exponential backoff (`offendWhileBlocked`, `periodMs: 'block'`): every request during a block is
 * an offence doubling it, the third a ban. The waits are exact on every backend: each is the block
 * the decision itself started, from its own clock reading. An hour's window, so real time cannot
 * reach a window's end between the requests.
 */
async function backoffTimeline (t: Test, backend: ThrottleBackend, decisions?: () => Promise<number>): Promise<void> {
  const HOUR = 3_600_000
  const { send, bans } = await rig(t, backend, {
    rate: { limit: 2, windowMs: HOUR },
    escalation: { blocks: { initialMs: HOUR, factor: 2, maxMs: 2 ** 52 }, offendWhileBlocked: true, periodMs: 'block', ban: { after: 3 } }
  })
  const before = decisions === undefined ? 0 : await decisions()
  t.same([await send(), await send()].map((s) => s.status), [200, 200])
  const steps = [await send(), await send(), await send(), await send()]
  t.same(steps, [1, 2, 3, 4].map((n) => ({ status: n >= 3 ? 403 : 429, retryAfterMs: HOUR * 2 ** (n - 1), offences: n, offence: true, banned: n >= 3 })), '1 h, 2 h, then banned 4 h, 8 h')
  t.equal(bans.length, 2, 'each offence during the ban renews it and calls onBanReach')
  if (decisions !== undefined) t.equal(await decisions() - before, 6, 'one script call per decision (6 decisions)')
}

t.test('exponential backoff: InMemory, Redis (one round trip per decision) and Memcached', async (t) => {
  t.test('InMemory', async (t) => { await backoffTimeline(t, new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) })) })
  t.test('Redis', async (t) => {
    const { url, probe, stop } = await privateRedis()
    t.teardown(stop)
    const backend = new RedisBackend(url, { namespace: uniqueNamespace() })
    await backend.initialize()
    await backoffTimeline(t, backend, async () => await redisScriptCalls(probe))
  })
  t.test('Memcached', async (t) => {
    await backoffTimeline(t, new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace() }))
  })
})

t.test('Redis: two escalations and a ban, one round trip per decision', async (t) => {
  // A private server: commandstats of a shared one would count other tests' commands.
  const { url, probe, stop } = await privateRedis()
  t.teardown(stop)
  const backend = new RedisBackend(url, { namespace: uniqueNamespace() })
  await backend.initialize()
  await probe.config('RESETSTAT')
  const scriptCalls = async (): Promise<number> => {
    const counts = await redisCommandCounts(probe)
    const others = [...counts.keys()].filter((name) => !['evalsha', 'eval', 'get', 'set', 'del', 'time', 'config|resetstat', 'config'].includes(name))
    if (others.length > 0) throw new Error(`other commands ran: ${others.join(', ')}`)
    return (counts.get('evalsha') ?? 0) + (counts.get('eval') ?? 0)
  }
  await realTimeline(t, backend, scriptCalls)
})

t.test('Memcached: two escalations and a ban', async (t) => {
  const backend = new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace() })
  await realTimeline(t, backend)
})

t.test('a ban with its own status and body; onThrottled answers only the 429s', async (t) => {
  const clock = new ManualClock(ALIGNED_START)
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend({ clock }) })
  const throttled: number[] = []
  app.get('/', {
    config: {
      rateLimit: {
        rate: '1/min',
        onThrottled: (_request, reply, info) => { throttled.push(info.retryAfterSeconds); return reply.send({ slow: 'down' }) },
        escalation: { ban: { after: 2, durationMs: 120_000, statusCode: 451, body: (_request: unknown, info: BanInfo) => ({ banned: info.retryAfterSeconds }) } }
      }
    }
  }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  t.equal((await app.inject('/')).statusCode, 200)
  const first = await app.inject('/')
  t.equal(first.statusCode, 429)
  t.same(first.json(), { slow: 'down' }, 'offence 1 (no block: only counted) goes to onThrottled')
  t.equal((await app.inject('/')).statusCode, 451, 'offence 2 bans')
  const during = await app.inject('/')
  t.equal(during.statusCode, 451)
  t.same(during.json(), { banned: 120 })
  t.equal(during.headers['retry-after'], '120')
  t.same(throttled, [60], 'onThrottled was not called for the ban')
  clock.advance(120_000)
  t.equal((await app.inject('/')).statusCode, 200, 'the ban is over')
})

t.test('a ban without a body is the coded TRAFFIK_ERR_BANNED error with its status', async (t) => {
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend({ clock: new ManualClock(ALIGNED_START) }) })
  app.get('/', { config: { rateLimit: { rate: '1/min', escalation: { ban: { after: 1 } } } } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  await app.inject('/')
  const banned = await app.inject('/')
  t.equal(banned.statusCode, 403)
  t.match(banned.json(), { statusCode: 403, code: 'TRAFFIK_ERR_BANNED', error: 'Forbidden' })
  t.equal(banned.headers['retry-after'], '3600', 'the ban lasts the period by default')
})

t.test('continueExceeding: every rejection restarts the window; admitted one window after the last one', async (t) => {
  const clock = new ManualClock(ALIGNED_START)
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend({ clock }) })
  app.get('/', { config: { rateLimit: { rate: '2/10s', escalation: { continueExceeding: true } } } }, async () => 'ok')
  t.teardown(async () => { await app.close() })
  const status = async (): Promise<number> => (await app.inject('/')).statusCode
  t.same([await status(), await status(), await status()], [200, 200, 429])
  for (let i = 0; i < 3; i++) {
    clock.advance(9_000)
    const response = await app.inject('/')
    t.equal(response.statusCode, 429, `still exceeding after ${9 * (i + 1)} s: blocked again`)
    t.equal(response.headers['retry-after'], '10', 'for a whole window from now')
  }
  clock.advance(9_999)
  t.equal(await status(), 429, 'one ms before a window has passed since the last rejection (which restarted it)')
  clock.advance(10_000)
  t.same([await status(), await status()], [200, 200], 'a window after the last rejection: a full budget')
})
