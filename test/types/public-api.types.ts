/**
 * Type tests: compiled by `tsc` in `npm test` (never executed). Lines marked @ts-expect-error must
 * fail to type-check; if one compiles, tsc reports the unused directive and the test run fails.
 */
import Fastify from 'fastify'
import traffik, {
  EXEMPTED, FixedWindow, InMemoryBackend, Throttle, createThrottle, parseRate,
  type Decision, type RouteRateLimit, type ThrottleOptions, type TraffikPluginOptions
} from '../../lib/index.js'
import {
  CircuitBreaker, bypassIf, failover, limitMessages, reserveAll, retry, throttleIf,
  type CustomHeaders, type DecisionEvent, type HeadersOption, type Reservation, type BreakerStateChange, type ThrottledFrame
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
// @ts-expect-error rateLimit cannot be true or a string
app.get('/e1', { config: { rateLimit: true } }, async () => 'ok')
// @ts-expect-error
const notALimit: RouteRateLimit = '5/s'
void notALimit
// This program imports compat too, so a route takes either shape, each checked whole: mixing
// them is an error. (test/types/programs/ checks programs importing only one entry point.)
app.get('/e2', { config: { rateLimit: { max: 10, timeWindow: 60_000 } } }, async () => 'ok')
// @ts-expect-error max is compat's name, rate the native one
app.get('/e3', { config: { rateLimit: { rate: '5/s', max: 10 } } }, async () => 'ok')
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

// ---- Headers, rules, error handling, reservations, observability, WebSockets ----

const styles: HeadersOption[] = ['legacy', 'draft-6', 'draft-7', 'draft-8', false]
void styles
const customHeaders: CustomHeaders = {
  'x-left': { value: 'remaining', when: 'always' },
  'x-limit': 'limit',
  'x-wait': { value: 'retry-after-ms', when: 'throttled' },
  'x-tier': { static: 'free' }
}
void customHeaders
// @ts-expect-error headers style must be a known draft
const badStyle: HeadersOption = 'draft-9'
void badStyle
// @ts-expect-error a wait cannot be sent on allowed responses
const waitAlways: CustomHeaders = { 'x-wait': { value: 'retry-after', when: 'always' } }
void waitAlways
// @ts-expect-error unknown field
const unknownField: CustomHeaders = { 'x-a': { value: 'remainder' } }
void unknownField

const breaker = new CircuitBreaker({ failureThreshold: 3, recoveryTimeMs: 10_000, halfOpenProbes: 2, onStateChange: (change: BreakerStateChange) => change.to })
breaker.on('stateChange', (change) => { void change.reason })
app.get('/rules', {
  config: {
    rateLimit: {
      rate: '5/s',
      headers: 'draft-8',
      rules: [throttleIf({ methods: ['POST'], path: '/api/*' }), bypassIf((request) => request.headers['x-internal'] === '1')],
      onError: [retry({ retries: 2, retryOn: [Error], backoff: 'exponential' }), failover({ backend: new InMemoryBackend(), breaker }), 'allow']
    }
  }
}, async (request) => {
  const state = request.rateLimit
  const remaining: number | undefined = state?.decision.remaining
  const uids: string[] | undefined = state?.throttles.map((throttle) => throttle.uid)
  const reservation: Reservation = await app.throttle.get('x')!.reserve(request, { cost: 2 })
  if (reservation.decision.allowed) reservation.commit()
  else await reservation.refund()
  const both: Reservation = await reserveAll(request, [job], { cost: 1 })
  return { remaining, uids, state: both.state }
})
// @ts-expect-error retry needs retryOn
retry({ retries: 2 })
// @ts-expect-error backoff is 'fixed' or 'exponential'
retry({ retryOn: [Error], backoff: 'linear' })
// @ts-expect-error a rule is built with throttleIf / bypassIf, not a plain object
app.get('/bad-rule', { config: { rateLimit: { rate: '1/s', rules: [{ path: '/x' }] } } }, async () => 'ok')
// @ts-expect-error throttleIf criteria are methods, path and when
throttleIf({ paths: '/x' })

void app.register(traffik, {
  onDecision: (event: DecisionEvent) => {
    const outcome: 'allowed' | 'throttled' | 'shadow-throttled' | 'error' = event.type
    void outcome
  }
})
// @ts-expect-error onDecision is a function
void app.register(traffik, { onDecision: 'log' })

const frame: ThrottledFrame = { type: 'rate_limited', retryAfter: 1, retryAfterMs: 1000, limit: 1, remaining: 0, resetMs: 1000 }
void frame
const fakeSocket = { on () {}, send () {}, close () {} }
limitMessages(fakeSocket, { ip: '1.2.3.4' }, job, { onMessage: () => {}, onThrottled: 'close', closeCode: 1013 })
// @ts-expect-error close codes are 1008 or 1013
limitMessages(fakeSocket, { ip: '1.2.3.4' }, job, { onMessage: () => {}, closeCode: 1000 })
