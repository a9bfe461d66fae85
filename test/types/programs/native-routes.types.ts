/**
 * Type tests of route limits in a program that imports only the native plugin (compiled by
 * `npm test` through tsconfig.native.json, never executed). Each @ts-expect-error must fail to
 * type-check, or tsc reports the unused directive.
 */
import Fastify from 'fastify'
import traffik, { InMemoryBackend, type RouteRateLimit } from '../../../lib/index.js'

const app = Fastify()

// The function form of register infers without an annotation (Fastify's generic one widened
// 'draft-7' to string and failed with TS2769).
void app.register(traffik, (instance) => ({ backend: new InMemoryBackend(), defaults: { headers: 'draft-7' }, hook: instance.hasDecorator('x') ? 'onRequest' : 'preHandler' }))
void app.register(traffik, () => ({ global: { rate: '100/min' }, prefix: '/api' }))
// @ts-expect-error the function form is still checked: hook is 'onRequest' or 'preHandler'
void app.register(traffik, () => ({ hook: 'onSend' }))
// @ts-expect-error the object form too
void app.register(traffik, { global: { rate: '1/s', max: 10 } })

// Valid route limits
app.get('/a', { config: { rateLimit: { rate: '5/s', cost: 2, identifier: (request) => request.ip } } }, async () => 'ok')
app.get('/b', { config: { rateLimit: false } }, async () => 'ok')
app.get('/c', { config: { rateLimit: [{ rate: '5/s' }, { rate: '100/hour', uid: 'hourly' }] } }, async () => 'ok')
app.route({ method: 'GET', url: '/d', config: { rateLimit: { rate: '1/s' } }, handler: async () => 'ok' })

// A primitive where options belong
// @ts-expect-error rateLimit: true is not a limit
app.get('/e', { config: { rateLimit: true } }, async () => 'ok')
// @ts-expect-error a rate string must be written as { rate: '5/s' }
app.get('/f', { config: { rateLimit: '5/s' } }, async () => 'ok')
// @ts-expect-error nor a number
app.route({ method: 'GET', url: '/g', config: { rateLimit: 10 }, handler: async () => 'ok' })

// Other limiters' names, each refused with the native name in the message
// @ts-expect-error max and timeWindow are @fastify/rate-limit's: write rate (or import fastify-traffik/compat)
app.get('/h', { config: { rateLimit: { max: 10, timeWindow: 60_000 } } }, async () => 'ok')
// @ts-expect-error keyGenerator is @fastify/rate-limit's: write identifier
app.get('/i', { config: { rateLimit: { rate: '1/s', keyGenerator: () => 'k' } } }, async () => 'ok')
// @ts-expect-error ban is @fastify/rate-limit's: write escalation
app.get('/j', { config: { rateLimit: { rate: '1/s', ban: 3 } } }, async () => 'ok')
// @ts-expect-error skipSuccessfulRequests is express-rate-limit's: write skipSuccessful
app.get('/k', { config: { rateLimit: { rate: '1/s', skipSuccessfulRequests: true } } }, async () => 'ok')
// @ts-expect-error windowMs belongs inside rate: { limit, windowMs }
app.get('/l', { config: { rateLimit: { limit: 10, windowMs: 60_000 } } }, async () => 'ok')

// Known options with wrong values, also inside a list
// @ts-expect-error cost must be a number or a function
app.get('/m', { config: { rateLimit: { rate: '5/s', cost: '1' } } }, async () => 'ok')
// @ts-expect-error onError must be a known policy or a handler
app.get('/n', { config: { rateLimit: [{ rate: '5/s' }, { rate: '1/h', onError: 'ignore' }] } }, async () => 'ok')
// @ts-expect-error a list holds options objects, not lists
app.get('/o', { config: { rateLimit: [[{ rate: '5/s' }]] } }, async () => 'ok')

// A misspelled name of the package's own: Fastify infers each route's config type from the
// literal, so TypeScript cannot refuse a key it has never heard of there; startup refuses it with
// TRAFFIK_ERR_INVALID_OPTION naming the route. `satisfies RouteRateLimit` checks it at compile time.
// @ts-expect-error identifer is not an option (did you mean identifier?)
app.get('/p', { config: { rateLimit: { rate: '1/s', identifer: () => 'k' } satisfies RouteRateLimit } }, async () => 'ok')
const checked: RouteRateLimit = { rate: '1/s', identifier: () => 'k' }
app.get('/q', { config: { rateLimit: checked } }, async () => 'ok')
