/**
 * Concurrency through the Fastify hook, on a real HTTP server: a slot is taken before the handler
 * and given back when the response ends — sent, failed, or abandoned by the client — on every
 * built-in backend; all-or-nothing with a rate limit on the same route; a lease that is never
 * released lapses after the rate's window.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import {
  Concurrency, FixedWindow, InMemoryBackend, ManualClock, MemcachedBackend, RedisBackend, createThrottle, errorCodes, traffik,
  type ThrottleBackend
} from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

/** A handler that stays in flight until the test lets it go. */
class Gate {
  #waiting: Array<() => void> = []
  entered = 0
  readonly #entries: Array<() => void> = []

  async pass (): Promise<void> {
    this.entered++
    this.#entries.shift()?.()
    await new Promise<void>((resolve) => { this.#waiting.push(resolve) })
  }

  /** Resolves once `count` handlers have entered in total. */
  async entries (count: number): Promise<void> {
    while (this.entered < count) await new Promise<void>((resolve) => { this.#entries.push(resolve) })
  }

  openAll (): void {
    for (const resolve of this.#waiting.splice(0)) resolve()
  }
}

interface Served { app: FastifyInstance, port: number, gate: Gate, free: (slots: number) => Promise<void> }

/**
 * An app whose GET /work holds a slot (limit `limit`) while the gate is closed. `free(n)` resolves
 * once `n` slots are free (releases travel to the backend after the response has closed).
 */
async function serve (t: Test, backend: ThrottleBackend, limit: number, extra: object[] = [], fail = false): Promise<Served> {
  const gate = new Gate()
  const app = Fastify()
  await app.register(traffik, { backend })
  app.get('/work', {
    config: { rateLimit: [{ uid: 'work', rate: { limit, windowMs: 60_000 }, strategy: new Concurrency(), identifier: () => 'all' }, ...extra] }
  }, async () => {
    await gate.pass()
    if (fail) throw new Error('handler failed')
    return { ok: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { gate.openAll(); await app.close() })
  const port = (app.server.address() as AddressInfo).port
  const free = async (slots: number): Promise<void> => {
    while ((await app.throttle.get('work')!.stat({ ip: '10.0.0.1' })).remaining < slots) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return { app, port, gate, free }
}

interface Answer { status: number, headers: Record<string, string | string[] | undefined> }

function get (port: number, path = '/work'): { answer: Promise<Answer>, abort: () => void } {
  let abort = (): void => {}
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers }) })
    })
    req.on('error', reject)
    abort = () => { req.destroy() }
    req.end()
  })
  return { answer, abort }
}

const redisUrl = await sharedRedisUrl()
const memcachedServers = await sharedMemcachedServers()

const backends: Array<[string, () => ThrottleBackend]> = [
  ['InMemoryBackend', () => new InMemoryBackend()],
  ['RedisBackend', () => new RedisBackend(redisUrl, { namespace: uniqueNamespace('conc') })],
  ['MemcachedBackend', () => new MemcachedBackend(memcachedServers, { namespace: uniqueNamespace('conc') })]
]

for (const [label, make] of backends) {
  t.test(`${label}: at most N in flight; slots come back when responses end, fail or are abandoned`, async (t) => {
    const backend = make()
    const { port, gate, free } = await serve(t, backend, 2)
    const first = get(port)
    const second = get(port)
    await gate.entries(2)
    const third = await get(port).answer
    t.equal(third.status, 429, 'a third request while two are in flight is refused')
    t.equal(third.headers['x-ratelimit-remaining'], '0')
    t.equal(gate.entered, 2, 'the refused request never reached the handler')

    // One response ends: its slot is free again.
    gate.openAll()
    t.equal((await first.answer).status, 200)
    t.equal((await second.answer).status, 200)
    await free(2)
    const again = [get(port), get(port)]
    await gate.entries(4)
    t.equal((await get(port).answer).status, 429, 'both slots taken again: the earlier two were released')

    // A client that leaves mid-request gives its slot back.
    again[0]!.abort()
    await t.rejects(again[0]!.answer)
    await free(1)
    const replacement = get(port)
    await gate.entries(5)
    t.equal(gate.entered, 5, 'the abandoned slot went to the next request')
    gate.openAll()
    t.equal((await again[1]!.answer).status, 200)
    t.equal((await replacement.answer).status, 200)
  })
}

t.test('a slot under an escalation policy is still given back when the response ends', async (t) => {
  const app = Fastify()
  await app.register(traffik, { backend: new InMemoryBackend() })
  app.get('/work', {
    config: { rateLimit: { uid: 'esc', rate: { limit: 1, windowMs: 60_000 }, strategy: new Concurrency(), identifier: () => 'all', escalation: { blocks: [60_000] } } }
  }, async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  const port = (app.server.address() as AddressInfo).port
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) {
    statuses.push((await get(port).answer).status)
    // The release travels after the response closed; a leaked slot never comes back (bounded wait).
    for (let polls = 0; polls < 400 && (await app.throttle.get('esc')!.stat({ ip: '10.0.0.1' })).remaining < 1; polls++) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  t.same(statuses, [200, 200, 200], 'one at a time, each finds the slot free again')
})

t.test('a handler that fails gives its slot back', async (t) => {
  const { port, gate, free } = await serve(t, new InMemoryBackend(), 1, [], true)
  const first = get(port)
  await gate.entries(1)
  t.equal((await get(port).answer).status, 429)
  gate.openAll()
  t.equal((await first.answer).status, 500)
  await free(1)
  const next = get(port)
  await gate.entries(2)
  gate.openAll()
  t.equal((await next.answer).status, 500, 'the next request got the slot (and failed in turn)')
})

t.test('with a rate limit on the same route: all-or-nothing', async (t) => {
  const rate = { uid: 'work-rate', rate: '3/min', strategy: new FixedWindow(), identifier: () => 'all' }
  const { app, port, gate, free } = await serve(t, new InMemoryBackend(), 1, [rate])
  const holder = get(port)
  await gate.entries(1)
  // Refused by the concurrency limit: the rate limit is not charged.
  for (let i = 0; i < 3; i++) t.equal((await get(port).answer).status, 429)
  gate.openAll()
  t.equal((await holder.answer).status, 200)
  await free(1)
  const probe = await app.throttle.get('work-rate')!.stat({ ip: '10.0.0.1' })
  t.equal(probe!.remaining, 2, 'only the admitted request was charged to the rate limit')

  // Refused by the rate limit: no slot is taken.
  const a = get(port)
  await gate.entries(2)
  gate.openAll()
  await a.answer
  await free(1)
  const b = get(port)
  await gate.entries(3)
  gate.openAll()
  await b.answer
  t.equal((await get(port).answer).status, 429, 'the rate limit refuses the fourth request')
  const slot = await app.throttle.get('work')!.stat({ ip: '10.0.0.1' })
  t.equal(slot!.remaining, 1, 'the rate limit refusal took no slot')
})

t.test('a slot never released lapses after its lease (the rate window)', async (t) => {
  const clock = new ManualClock(1_700_000_000_000)
  const throttle = createThrottle({ uid: 'leases', rate: '2/30s', strategy: new Concurrency(), backend: new InMemoryBackend({ clock }) })
  const client = { ip: '10.0.0.9' }
  t.equal((await throttle.hit(client))!.allowed, true)
  clock.advance(10_000)
  t.equal((await throttle.hit(client))!.allowed, true)
  const refused = (await throttle.hit(client))!
  t.equal(refused.allowed, false)
  t.equal(refused.retryAfterMs, 20_000, 'retry-after: when the oldest lease lapses')
  clock.advance(19_999)
  t.equal((await throttle.hit(client))!.allowed, false, 'not a millisecond early')
  clock.advance(1)
  t.equal((await throttle.hit(client))!.allowed, true, 'the first lease lapsed')
})

t.test('a reservation releases a slot taken outside the hook', async (t) => {
  const throttle = createThrottle({ uid: 'manual', rate: '1/min', strategy: new Concurrency(), backend: new InMemoryBackend() })
  const client = { ip: '10.0.0.7' }
  const reservation = await throttle.reserve(client)
  t.equal(reservation.decision.allowed, true)
  t.equal((await throttle.hit(client))!.allowed, false)
  await reservation.refund()
  t.equal((await throttle.stat(client)).remaining, 1, 'the slot is free again')
})

t.test('unknown options are refused with a coded error', async (t) => {
  t.throws(() => new Concurrency({ waitMs: 5 } as never), errorCodes.TRAFFIK_ERR_INVALID_OPTION)
  t.throws(() => new Concurrency(3 as never), errorCodes.TRAFFIK_ERR_INVALID_OPTION)
})
