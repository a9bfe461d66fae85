/**
 * Type tests of route limits in a program that imports only `fastify-traffik/compat` (compiled
 * by `npm test` through tsconfig.compat.json, never executed).
 */
import Fastify from 'fastify'
import rateLimit from '../../../lib/compat/index.js'

const app = Fastify()

// The function form of register infers without an annotation.
void app.register(rateLimit, () => ({ max: 100, timeWindow: '1 minute', hook: 'preHandler' }))
// @ts-expect-error hook is 'onRequest', 'preParsing', 'preValidation' or 'preHandler'
void app.register(rateLimit, () => ({ hook: 'onResponse' }))

app.get('/a', { config: { rateLimit: { max: 5, timeWindow: 60_000, groupId: 'auth' } } }, async () => 'ok')
app.get('/b', { config: { rateLimit: false } }, async () => 'ok')
// @ts-expect-error rateLimit: true is not a limit
app.get('/c', { config: { rateLimit: true } }, async () => 'ok')
// @ts-expect-error rate is the native plugin's name; compat routes take max and timeWindow
app.get('/d', { config: { rateLimit: { rate: '5/s' } } }, async () => 'ok')
// @ts-expect-error max must be a number or a function
app.get('/e', { config: { rateLimit: { max: '5' } } }, async () => 'ok')
