/**
 * Type tests: compiled by `tsc` in `npm test` (never executed). Lines marked @ts-expect-error must
 * fail to type-check; if one compiles, tsc reports the unused directive and the test run fails.
 */
import Fastify from 'fastify'
import traffik, {
  EXEMPTED, FixedWindow, InMemoryBackend, Throttle, createThrottle, parseRate,
  type Decision, type RouteRateLimit, type ThrottleOptions, type TraffikPluginOptions
} from '../../lib/index.js'

const app = Fastify()

// Plugin options
const options: TraffikPluginOptions = {
  backend: new InMemoryBackend({ maxKeys: 10_000 }),
  global: { rate: '100/min' },
  defaults: { strategy: new FixedWindow(), onError: 'allow', headers: 'legacy' },
  hook: 'onRequest'
}
void app.register(traffik, options)
// @ts-expect-error hook must be 'preHandler' or 'onRequest'
void app.register(traffik, { hook: 'onSend' })
// @ts-expect-error backend must be a ThrottleBackend
void app.register(traffik, { backend: 'redis://localhost' })

// Route config is typed through the Fastify augmentation
app.get('/a', { config: { rateLimit: { rate: '5/s', cost: 2 } } }, async () => 'ok')
app.get('/b', { config: { rateLimit: false } }, async () => 'ok')
app.get('/c', { config: { rateLimit: [{ rate: '5/s' }, { rate: '100/hour', uid: 'hourly' }] } }, async () => 'ok')
app.get('/d', {
  config: {
    rateLimit: {
      rate: async (request) => (request.headers['x-tier'] === 'gold' ? '100/min' : { limit: 10, windowMs: 60_000 }),
      identifier: (request) => request.headers['x-api-key'] === undefined ? EXEMPTED : String(request.headers['x-api-key']),
      onThrottled: (_request, reply, info) => reply.code(429).send({ wait: info.retryAfterSeconds })
    }
  }
}, async () => 'ok')
// @ts-expect-error rateLimit cannot be true or a string (route-level inference is loose in Fastify's types, so check the type itself)
const notALimit: RouteRateLimit = true
// @ts-expect-error
const notALimitEither: RouteRateLimit = '5/s'
void notALimit
void notALimitEither
// @ts-expect-error cost must be a number or a function
app.get('/f', { config: { rateLimit: { rate: '5/s', cost: '1' } } }, async () => 'ok')
// @ts-expect-error onError must be a known policy or a handler
app.get('/g', { config: { rateLimit: { rate: '5/s', onError: 'ignore' } } }, async () => 'ok')

// Decorators
app.get('/h', async (request) => {
  const backend = request.throttleBackend
  const throttle = app.throttle.get('hourly')
  const decision: Decision | undefined = await throttle?.hit(request, { cost: 1 })
  await app.throttle.reset()
  return { named: backend?.name, remaining: decision?.remaining }
})

// Throttles outside the plugin
const job: Throttle = createThrottle({ uid: 'job', rate: parseRate('10/min') })
void job.hit({ ip: '1.2.3.4' }).then((d: Decision) => d.retryAfterMs)
// @ts-expect-error createThrottle needs a uid
createThrottle({ rate: '1/s' })

const partial: ThrottleOptions = { rate: null }
void partial
