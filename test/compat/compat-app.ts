/**
 * The app the compat tests build: `fastify-traffik/compat` registered with `options`, the routes
 * added, `Date` under `node:test` mock timers from 0 (reset when the test ends), ready.
 */
import { mock } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import compat, { type RateLimitPluginOptions } from '../../lib/compat/index.js'

export const ok = async (): Promise<string> => 'ok'

export async function buildCompatApp (t: Test, options: RateLimitPluginOptions, routes: (app: FastifyInstance) => void = (app) => { app.get('/', ok) }, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  mock.timers.reset()
  mock.timers.enable({ apis: ['Date'], now: 0 })
  const app = Fastify(fastifyOptions)
  await app.register(compat, options)
  routes(app)
  t.teardown(async () => {
    mock.timers.reset()
    await app.close()
  })
  await app.ready()
  return app
}

/** The status codes of `n` requests to `url`, in order. */
export async function statuses (app: FastifyInstance, n: number, url = '/'): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await app.inject(url)).statusCode)
  return out
}
