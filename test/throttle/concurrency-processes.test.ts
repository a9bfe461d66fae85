/**
 * Concurrency across 4 processes sharing Redis: the number of handlers running at once (counted
 * inside the handlers, in Redis) never exceeds the limit; a burst held in flight admits exactly
 * the limit; every slot comes back when the responses end; and the slots of a process killed
 * mid-request come back within their lease.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import t from 'tap'
import { sharedRedisUrl, uniqueNamespace } from '../../scripts/support/services.js'

const workerPath = fileURLToPath(new URL('../../scripts/support/concurrency-worker.ts', import.meta.url))
const url = await sharedRedisUrl()
const namespace = uniqueNamespace('cp')
const redis = new Redis(url)

interface Worker { child: ChildProcess, port: number }

let entered = 0
const onEnter: Array<() => void> = []

async function startWorker (): Promise<Worker> {
  const child = fork(workerPath, [url, namespace], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  child.on('message', (m: { type: string }) => {
    if (m.type !== 'entered') return
    entered++
    for (const f of onEnter.splice(0)) f()
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { type: string, port: number }) => { if (m.type === 'listening') resolve(m.port) })
    child.once('exit', (code) => { reject(new Error(`worker exited with ${code} before listening`)) })
  })
  return { child, port }
}

const workers = await Promise.all(Array.from({ length: 4 }, startWorker))
const agent = new Agent({ keepAlive: true, maxSockets: 256 })
t.teardown(async () => {
  agent.destroy()
  for (const w of workers) if (w.child.connected) w.child.disconnect()
  await redis.quit()
})

async function get (worker: Worker, path: string): Promise<number> {
  return await new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: worker.port, path, agent }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.on('error', () => { resolve(0) })
    req.end()
  })
}

async function until (condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise<void>((resolve) => { onEnter.push(resolve); setTimeout(resolve, 10) })
}

/** Free slots of a uid as the Redis state says: the limit minus the live leases. */
async function inFlight (uid: string, leaseMs: number): Promise<number> {
  const raw = await redis.get(`${namespace}:${uid}:{all}`)
  if (raw === null) return 0
  const [seconds, micros] = await redis.time()
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  const log = raw.split(',').map(Number)
  let total = 0
  for (let i = 0; i < log.length; i += 2) if (log[i]! + leaseMs > now) total += log[i + 1]!
  return total
}

t.test('200 slow concurrent requests, limit 5: never more than 5 handlers at once, every slot released', async (t) => {
  const uid = 'slow'
  const statuses = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
    await get(workers[i % 4]!, `/slow/${uid}?limit=5&leaseMs=60000&holdMs=20`)))
  const admitted = statuses.filter((s) => s === 200).length
  const max = Number(await redis.get(`${uid}:max`))
  t.comment(`${admitted} admitted, ${statuses.filter((s) => s === 429).length} refused, at most ${max} handlers at once`)
  t.equal(statuses.filter((s) => s !== 200 && s !== 429).length, 0, 'only 200 and 429')
  t.ok(max >= 1 && max <= 5, `at most 5 handlers ran at once (measured ${max})`)
  t.ok(admitted >= 5, 'slots were reused as responses ended')
  await until(async () => await inFlight(uid, 60_000) === 0)
  t.equal(await inFlight(uid, 60_000), 0, 'no slot is held once every response has ended')
})

t.test('1000 requests held in flight over 4 processes, limit 100: exactly 100 admitted', async (t) => {
  const uid = 'held'
  const before = entered
  let answered = 0
  const requests = Array.from({ length: 1000 }, async (_, i) => {
    const status = await get(workers[i % 4]!, `/slow/${uid}?limit=100&leaseMs=600000&holdMs=gate`)
    answered++
    return status
  })
  // Every request has been decided once the refused ones have answered and the admitted ones entered.
  await until(() => answered + (entered - before) >= 1000)
  t.equal(Number(await redis.get(`${uid}:running`)), entered - before, 'every admitted request is in its handler')
  t.equal(await inFlight(uid, 600_000), 100, '100 slots held')
  for (const w of workers) w.child.send({ type: 'open' })
  const statuses = await Promise.all(requests)
  t.equal(statuses.filter((s) => s === 200).length, 100, 'exactly the limit admitted')
  t.equal(statuses.filter((s) => s === 429).length, 900)
  t.equal(Number(await redis.get(`${uid}:max`)), 100, 'exactly 100 handlers ran at once')
  await until(async () => await inFlight(uid, 600_000) === 0)
  t.pass('every slot came back')
})

t.test('a process killed mid-request: its slots come back within the lease', async (t) => {
  const uid = 'killed'
  const leaseMs = 2000
  const victim = workers[0]!
  const before = entered
  const held = Array.from({ length: 5 }, async () => await get(victim, `/slow/${uid}?limit=5&leaseMs=${leaseMs}&holdMs=gate`))
  await until(() => entered - before >= 5)
  victim.child.kill('SIGKILL')
  await Promise.all(held)
  const key = `${namespace}:${uid}:{all}`
  const ttl = await redis.pttl(key)
  t.ok(ttl > 0 && ttl <= leaseMs, `the slots are stored for at most their lease (PTTL ${ttl} ms)`)
  const killedAt = Date.now()
  const survivor = workers[1]!
  await until(async () => await get(survivor, `/slow/${uid}?limit=5&leaseMs=${leaseMs}&holdMs=0`) === 200)
  t.comment(`a slot was free again ${Date.now() - killedAt} ms after the kill (lease ${leaseMs} ms)`)
  t.pass('admitted again: the five leases of the dead process lapsed (the limit is 5)')
})
