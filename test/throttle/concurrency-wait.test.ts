/**
 * Waiting for a concurrency slot (`new Concurrency({ maxWaitMs })`): refused requests wait in
 * arrival order and run when a slot comes back, a newcomer never passes requests already waiting,
 * the bound ends the wait with a 429, a client that goes away leaves the queue, and slots given
 * back by another process (here: straight on the shared Redis, so nothing in this process says so)
 * are found by polling. Assertions are on order and outcomes, never on durations.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { Concurrency, InMemoryBackend, ManualClock, RedisBackend, traffik, type ThrottleBackend } from '../../lib/index.js'
import { sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** An app whose `/work` handler records who entered and waits until the test lets that one go. */
async function gatedApp (t: Test, backend: ThrottleBackend, maxWaitMs: number, rate = '1/1h'): Promise<{ app: FastifyInstance, entered: string[], release: (id: string) => void }> {
  const entered: string[] = []
  const gates = new Map<string, () => void>()
  const app = Fastify()
  await app.register(traffik, { backend })
  app.get('/work', { config: { rateLimit: { uid: 'work', rate, strategy: new Concurrency({ maxWaitMs }), identifier: () => 'all' } } }, async (request) => {
    const id = String(request.headers['x-id'])
    entered.push(id)
    await new Promise<void>((resolve) => gates.set(id, resolve))
    return { id }
  })
  t.teardown(async () => { for (const open of gates.values()) open(); await app.close() })
  await app.ready()
  const release = (id: string): void => { gates.get(id)?.() }
  return { app, entered, release }
}

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(5)
}

t.test('waiting requests run in arrival order as slots come back', async (t) => {
  const { app, entered, release } = await gatedApp(t, new InMemoryBackend(), 60_000)
  const ask = (id: string) => app.inject({ url: '/work', headers: { 'x-id': id } })
  const first = ask('1')
  await until(() => entered.length === 1)
  const second = ask('2')
  await sleep(30)
  const third = ask('3')
  await sleep(30)
  const fourth = ask('4')
  await sleep(30)
  t.same(entered, ['1'], 'one slot: the others wait')
  release('1')
  await until(() => entered.length === 2)
  release('2')
  await until(() => entered.length === 3)
  release('3')
  await until(() => entered.length === 4)
  release('4')
  const answers = await Promise.all([first, second, third, fourth])
  t.same(entered, ['1', '2', '3', '4'], 'in the order they arrived')
  t.same(answers.map((a) => a.statusCode), [200, 200, 200, 200], 'every one admitted, none refused')
})

t.test('past maxWaitMs a waiting request is refused as it would have been at once', async (t) => {
  const { app, entered, release } = await gatedApp(t, new InMemoryBackend(), 50)
  const first = app.inject({ url: '/work', headers: { 'x-id': 'a' } })
  await until(() => entered.length === 1)
  const refused = await app.inject({ url: '/work', headers: { 'x-id': 'b' } })
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().code, 'TRAFFIK_ERR_RATE_LIMITED')
  t.same(entered, ['a'], 'the refused request never ran')
  release('a')
  t.equal((await first).statusCode, 200)
  const none = await gatedApp(t, new InMemoryBackend(), 0)
  const held = none.app.inject({ url: '/work', headers: { 'x-id': 'c' } })
  await until(() => none.entered.length === 1)
  t.equal((await none.app.inject({ url: '/work', headers: { 'x-id': 'd' } })).statusCode, 429, 'maxWaitMs 0 (the default): refused at once')
  none.release('c')
  await held
})

t.test('maxWaitMs is validated with a coded error', async (t) => {
  for (const maxWaitMs of [-1, 1.5, '100', null]) t.throws(() => new Concurrency({ maxWaitMs } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, String(maxWaitMs))
  t.throws(() => new Concurrency({ wait: 1 } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' }, 'unknown option')
  t.equal(new Concurrency().maxWaitMs, 0, 'default: refused at once')
})

t.test('a newcomer that finds a free slot still goes behind requests already waiting', async (t) => {
  const clock = new ManualClock()
  // The lease (the rate's window) lapses when the test moves the clock: a slot comes free while
  // its request still runs, and nothing in this process says so.
  const { app, entered, release } = await gatedApp(t, new InMemoryBackend({ clock }), 60_000, '1/1s')
  const ask = (id: string) => app.inject({ url: '/work', headers: { 'x-id': id } })
  const first = ask('1')
  await until(() => entered.length === 1)
  const second = ask('2')
  await sleep(600) // the waiting request now polls every 200 ms
  clock.advance(1000)
  const third = ask('3')
  await until(() => entered.length === 2)
  t.same(entered, ['1', '2'], 'the slot went to the request that was waiting')
  clock.advance(1000)
  await until(() => entered.length === 3)
  t.same(entered, ['1', '2', '3'], 'the newcomer ran after it')
  release('1')
  release('2')
  release('3')
  t.same((await Promise.all([first, second, third])).map((a) => a.statusCode), [200, 200, 200])
})

t.test('a client that goes away while waiting leaves the queue', async (t) => {
  const { app, entered, release } = await gatedApp(t, new InMemoryBackend(), 60_000)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const get = (id: string): { done: Promise<number>, abort: () => void } => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/work', headers: { 'x-id': id } })
    const done = new Promise<number>((resolve) => {
      req.on('response', (res) => { res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) }) })
      req.on('error', () => { resolve(-1) })
    })
    req.end()
    return { done, abort: () => { req.destroy() } }
  }
  const first = get('1')
  await until(() => entered.length === 1)
  const leaving = get('2')
  await sleep(50)
  const third = get('3')
  await sleep(50)
  leaving.abort()
  t.equal(await leaving.done, -1, 'the client went away')
  release('1')
  await until(() => entered.length === 2)
  t.same(entered, ['1', '3'], 'the next in line ran; the one that left never did')
  release('3')
  t.same([await first.done, await third.done], [200, 200])
})

t.test('Redis: a slot given back by another process is found by polling', async (t) => {
  const backend = new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace('wait'), timeoutMs: 5000 })
  const { app, entered, release } = await gatedApp(t, backend, 60_000)
  const other = new RedisBackend(await sharedRedisUrl(), { namespace: backend.namespace, timeoutMs: 5000 })
  await other.initialize()
  t.teardown(async () => { await other.close() })
  // Another process holds the only slot of GET /work's budget.
  const op = { strategy: new Concurrency(), key: 'work:{all}', limit: 1, windowMs: 3_600_000, cost: 1 }
  const [taken] = await other.evaluate([op], 'hit')
  t.equal(taken!.allowed, true)
  const waiting = app.inject({ url: '/work', headers: { 'x-id': 'w' } })
  await sleep(100)
  t.same(entered, [], 'no slot: it waits')
  await other.evaluate([{ ...op, chargedAt: taken!.decidedAt }], 'refund')
  await until(() => entered.length === 1)
  t.same(entered, ['w'], 'the other process gave its slot back: the waiting request runs')
  release('w')
  t.equal((await waiting).statusCode, 200)
})
