/** Before: the app on @fastify/rate-limit. */
import rateLimit from '@fastify/rate-limit'
import Fastify, { type FastifyInstance } from 'fastify'
import { pluginOptions, routes } from './options.js'

export async function buildBefore (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(rateLimit, pluginOptions)
  routes(app)
  return app
}
