/**
 * One app process of the multi-process concurrency test. GET /slow/:uid is limited by a
 * Concurrency throttle (limit and lease from the query, one budget per uid, shared through Redis).
 * Inside the handler a Redis counter records how many handlers run at once and the highest value
 * seen; the handler then stays in flight for `holdMs`, or, with `holdMs=gate`, until the parent
 * sends 'open'. Every entry is reported to the parent.
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { Concurrency, RedisBackend, traffik, type Throttle } from '../../lib/index.js'

const ENTER = `local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n`

async function main (): Promise<void> {
  const [url, namespace] = process.argv.slice(2) as [string, string]
  const redis = new Redis(url)
  const backend = new RedisBackend(url, { namespace, timeoutMs: 10_000 })
  const app = Fastify()
  await app.register(traffik, { backend })
  const throttles = new Map<string, Throttle>()
  const gate: Array<() => void> = []

  app.get<{ Params: { uid: string }, Querystring: { limit: string, leaseMs: string, holdMs: string } }>('/slow/:uid', async (request, reply) => {
    const { uid } = request.params
    let throttle = throttles.get(uid)
    if (throttle === undefined) {
      throttle = app.throttle.create({
        uid,
        rate: { limit: Number(request.query.limit), windowMs: Number(request.query.leaseMs) },
        strategy: new Concurrency(),
        identifier: () => 'all'
      })
      throttles.set(uid, throttle)
    }
    const limited = throttle
    await new Promise<void>((resolve, reject) => {
      limited.hook(request, reply, (error) => { if (error === undefined) resolve(); else reject(error) })
    })
    await redis.eval(ENTER, 2, `${uid}:running`, `${uid}:max`)
    process.send?.({ type: 'entered', uid })
    try {
      if (request.query.holdMs === 'gate') await new Promise<void>((resolve) => { gate.push(resolve) })
      else await new Promise((resolve) => setTimeout(resolve, Number(request.query.holdMs)))
    } finally {
      await redis.decr(`${uid}:running`)
    }
    return { ok: true }
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  process.send?.({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })
  process.on('message', (message: { type: string }) => {
    if (message.type === 'open') {
      for (const open of gate.splice(0)) open()
      process.send?.({ type: 'opened' })
    }
  })
  process.on('disconnect', () => {
    setTimeout(() => process.exit(0), 1000).unref()
    Promise.all([app.close(), redis.quit()]).finally(() => process.exit(0))
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
