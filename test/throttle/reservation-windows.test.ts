/**
 * A reservation's refund gives back its charge in the charge's own window, through the throttle,
 * on every built-in backend: reserve 3 in window W, let W end, spend 2 in the new window, refund
 * the old reservation, and a further 2 is rejected (limit 3). Before charges knew when they were
 * made, the refund gave back the 2 new units and the limit of 3 admitted 4.
 *
 * InMemory runs on a ManualClock; Redis and Memcached keep their own time, so those runs use a
 * 600 ms window and real time, and a run whose steps straddle a window they must share (a loaded
 * machine) is repeated on a fresh client.
 */
import t, { type Test } from 'tap'
import {
  FixedWindow, InMemoryBackend, ManualClock, MemcachedBackend, RedisBackend, createThrottle, reserveAll,
  type Decision, type ThrottleBackend
} from '../../lib/index.js'
import { sharedMemcachedServers, sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const WINDOW_MS = 600
const windowOf = (at: number): number => Math.floor(at / WINDOW_MS)

interface Run { reserved: Decision, spent: Decision, refunded: boolean, last: Decision }

async function scenario (backend: ThrottleBackend, client: string, pass: () => Promise<void>, several: boolean): Promise<Run> {
  const request = { ip: client }
  const throttle = createThrottle({ uid: 'windows', rate: { limit: 3, windowMs: WINDOW_MS }, strategy: new FixedWindow(), backend })
  const other = createThrottle({ uid: 'roomy', rate: { limit: 1000, windowMs: WINDOW_MS }, backend })
  const reservation = several ? await reserveAll(request, [throttle, other], { cost: 3 }) : await throttle.reserve(request, { cost: 3 })
  await pass()
  const spent = await throttle.hit(request, { cost: 2 })
  const refunded = await reservation.refund()
  const last = await throttle.hit(request, { cost: 2 })
  return { reserved: reservation.decision, spent, refunded, last }
}

function assertRun (t: Test, run: Run, label: string): void {
  t.equal(run.reserved.allowed, true, `${label}: the reservation of 3 is admitted`)
  t.equal(run.spent.allowed, true, `${label}: in the next window 2 more are admitted`)
  t.equal(run.refunded, true, `${label}: the refund went through`)
  t.equal(run.last.allowed, false, `${label}: a further 2 is rejected (limit 3, 2 spent in this window)`)
}

for (const several of [false, true]) {
  const how = several ? 'reserveAll' : 'reserve'
  t.test(`InMemory, ${how}: a refund after the window ended gives nothing back`, async (t) => {
    const start = 1_700_000_000_000 - (1_700_000_000_000 % WINDOW_MS)
    const clock = new ManualClock(start)
    const run = await scenario(new InMemoryBackend({ clock }), '10.0.0.1', async () => { clock.advance(WINDOW_MS) }, several)
    assertRun(t, run, how)
  })
}

async function realTime (t: Test, backend: ThrottleBackend, name: string): Promise<void> {
  for (const several of [false, true]) {
    let run: Run | undefined
    let attempts = 0
    for (; attempts < 20 && run === undefined; attempts++) {
      const candidate = await scenario(backend, `10.0.${several ? 1 : 0}.${attempts}`, async () => {
        await new Promise((resolve) => setTimeout(resolve, WINDOW_MS + 20))
      }, several)
      const lapsed = windowOf(candidate.spent.decidedAt!) > windowOf(candidate.reserved.decidedAt!)
      if (lapsed && windowOf(candidate.last.decidedAt!) === windowOf(candidate.spent.decidedAt!)) run = candidate
    }
    if (run === undefined) {
      t.fail(`${name}: no run kept its steps in one window in 20 attempts`)
      continue
    }
    t.comment(`${name} ${several ? 'reserveAll' : 'reserve'}: ${attempts} attempt(s)`)
    assertRun(t, run, `${name} ${several ? 'reserveAll' : 'reserve'}`)
  }
}

t.test('Redis: a reservation refunded after its window ended gives nothing back', async (t) => {
  const backend = new RedisBackend(await sharedRedisUrl(), { namespace: uniqueNamespace('reserve-windows'), timeoutMs: 2000 })
  await backend.initialize()
  t.teardown(async () => { await backend.reset(); await backend.close() })
  await realTime(t, backend, 'Redis')
})

t.test('Memcached: a reservation refunded after its window ended gives nothing back', async (t) => {
  const backend = new MemcachedBackend(await sharedMemcachedServers(), { namespace: uniqueNamespace('reserve-windows'), timeoutMs: 2000 })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  await realTime(t, backend, 'Memcached')
})
