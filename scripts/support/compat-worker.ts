/**
 * One app process of the compat multi-process test: fastify-traffik/compat registered with an
 * ioredis client (REDIS_URL) and the options in COMPAT_OPTIONS (JSON), one route at GET /. It
 * listens on a free loopback port and reports it over IPC; it stops when the channel closes.
 */
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import compat, { type RateLimitPluginOptions } from '../../lib/compat/index.js'

async function main (): Promise<void> {
  const redis = new Redis(process.env.REDIS_URL!)
  const app = Fastify()
  await app.register(compat, { ...JSON.parse(process.env.COMPAT_OPTIONS!) as RateLimitPluginOptions, redis })
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  process.send?.({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })
  process.on('disconnect', () => {
    setTimeout(() => process.exit(0), 1000).unref()
    app.close().then(() => { redis.disconnect() }, () => {}).finally(() => process.exit(0))
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
