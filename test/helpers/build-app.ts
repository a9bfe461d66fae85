/**
 * A Fastify app with fastify-traffik on an InMemoryBackend driven by a ManualClock, closed when
 * the test ends. Time only moves when the test says so.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { InMemoryBackend, ManualClock, traffik } from '../../lib/index.js'
import type { TraffikPluginOptions } from '../../lib/index.js'

export interface TestApp {
  app: FastifyInstance
  clock: ManualClock
  backend: InMemoryBackend
}

/** Starts the clock at an instant aligned to every common window, so window edges are predictable. */
export const ALIGNED_START = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000)

export async function buildApp (t: Test, options: TraffikPluginOptions = {}, routes?: (app: FastifyInstance) => void): Promise<TestApp> {
  const clock = new ManualClock(ALIGNED_START)
  const backend = new InMemoryBackend({ clock })
  const app = Fastify()
  await app.register(traffik, { backend, ...options })
  routes?.(app)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, clock, backend }
}
