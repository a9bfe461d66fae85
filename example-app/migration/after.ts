/** After: one import changed; the options and routes are the same. */
import rateLimit from 'fastify-traffik/compat'
import Fastify, { type FastifyInstance } from 'fastify'
import { pluginOptions, routes } from './options.js'

export async function buildAfter (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(rateLimit, pluginOptions)
  routes(app)
  return app
}
