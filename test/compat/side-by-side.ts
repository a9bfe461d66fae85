/**
 * Runs one scenario against `@fastify/rate-limit` and against `fastify-traffik/compat`, with
 * `node:test`'s mock Date driving both, and records what a client sees of each response.
 */
import { mock } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify'
import oldPlugin from '@fastify/rate-limit'
import compatPlugin from '../../lib/compat/index.js'

export interface Seen { status: number, headers: Record<string, string>, body: string }

const SHOWN = ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after', 'content-type']

export function seen (res: { statusCode: number, headers: Record<string, unknown>, body: string }): Seen {
  const headers: Record<string, string> = {}
  for (const name of SHOWN) if (res.headers[name] !== undefined) headers[name] = String(res.headers[name])
  return { status: res.statusCode, headers, body: res.body }
}

export type Scenario = (app: FastifyInstance, plugin: FastifyPluginCallback<any>, step: { tick(ms: number): void }) => Promise<Seen[]>

export const plugins: Record<'old' | 'compat', FastifyPluginCallback<any>> = {
  old: oldPlugin as unknown as FastifyPluginCallback<any>,
  compat: compatPlugin as unknown as FastifyPluginCallback<any>
}

/** Runs a scenario on a fresh app with the mock Date at 0. */
export async function run (which: 'old' | 'compat', scenario: Scenario, fastifyOptions = {}): Promise<Seen[]> {
  mock.timers.enable({ apis: ['Date'], now: 0 })
  const app = Fastify(fastifyOptions)
  try {
    return await scenario(app, plugins[which], { tick: (ms) => { mock.timers.tick(ms) } })
  } finally {
    await app.close()
    mock.timers.reset()
  }
}
