/**
 * A second app process for the fleet-overrides test: one route limited to 1/min per `x-client`
 * (uid `api`) on the Redis at REDIS_URL, reading overrides every OVERRIDES_REFRESH_MS (and inside
 * each decision when OVERRIDES_IN_DECISION is 1). Sends its
 * port to the parent over IPC and stops when the parent goes.
 */
import Fastify from 'fastify'
import { RedisBackend, traffik } from '../../lib/index.js'

const app = Fastify()
await app.register(traffik, {
  backend: new RedisBackend(process.env.REDIS_URL!, { namespace: process.env.NAMESPACE! }),
  overrides: { refreshMs: Number(process.env.OVERRIDES_REFRESH_MS), inDecision: process.env.OVERRIDES_IN_DECISION === '1' }
})
app.get('/r', { config: { rateLimit: { uid: 'api', rate: '1/min', identifier: (request) => String(request.headers['x-client']) } } }, async () => 'ok')
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.send!({ port: typeof address === 'object' && address !== null ? address.port : 0 })
process.on('disconnect', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
