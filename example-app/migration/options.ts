/**
 * The rate-limit options of the example app, written once for @fastify/rate-limit. The "after"
 * app passes the very same object to fastify-traffik/compat.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'

export const pluginOptions = {
  max: 3,
  timeWindow: '1 minute',
  allowList: ['10.0.0.1'],
  keyGenerator: (request: FastifyRequest) => String(request.headers['x-api-key'] ?? request.ip),
  addHeaders: { 'x-ratelimit-limit': false }
}

/** The routes, the same in both apps. */
export function routes (app: FastifyInstance): void {
  app.get('/', async () => ({ hello: 'world' }))
  app.post('/login', {
    config: {
      rateLimit: {
        max: 2,
        timeWindow: 60_000,
        exponentialBackoff: true, // each further attempt doubles the wait: 1 min, 2 min, 4 min...
        errorResponseBuilder: (_request, context) => ({ statusCode: 429, error: 'Too many login attempts', retryIn: context.after })
      }
    }
  }, async () => ({ ok: true }))
  app.get('/health', { config: { rateLimit: false } }, async () => ({ ok: true }))
}
