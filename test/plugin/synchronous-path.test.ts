/**
 * Why dynamic resolution costs nothing measurable: on an in-memory backend the whole decision,
 * pinned or dynamic, completes synchronously inside the hook call (no promise, no tick), and the
 * resolver hook of a sync `resolveBackend` with an initialized backend calls `done` synchronously.
 * Deterministic: it checks when `done` runs, not how long anything takes.
 */
import t from 'tap'
import { createThrottle, InMemoryBackend, type Throttle } from '../../lib/index.js'
import { createBackendResolver } from '../../lib/plugin/backend-lifecycle.js'

function fakeReply () {
  const headers: Record<string, unknown> = {}
  return { sent: false, headers, header (name: string, value: unknown) { headers[name] = value; return this }, code () { return this }, send () { return this } }
}

/** Calls the throttle's hook and reports whether `done` ran before the call returned. */
function decidedSynchronously (throttle: Throttle, request: object): { sync: boolean, error: unknown } {
  let called = false
  let error: unknown
  throttle.hook(request as never, fakeReply() as never, (e) => { called = true; error = e })
  return { sync: called, error }
}

t.test('pinned and dynamic decisions both complete synchronously on an in-memory backend', async (t) => {
  const backend = new InMemoryBackend()
  const pinned = createThrottle({ uid: 'pinned', rate: '1000/min', backend, identifier: () => 'c' })
  const dynamic = createThrottle({ uid: 'dynamic', rate: '1000/min', dynamicBackend: true, identifier: () => 'c' })
  t.same(decidedSynchronously(pinned, {}), { sync: true, error: undefined }, 'pinned')
  t.same(decidedSynchronously(dynamic, { throttleBackend: backend }), { sync: true, error: undefined }, 'dynamic, request backend')
  backend.run(() => {
    t.same(decidedSynchronously(dynamic, {}), { sync: true, error: undefined }, 'dynamic, run() context')
  })
  t.equal(backend.size, 2, 'both throttles counted in the backend (the two dynamic decisions share one key)')
})

t.test('the resolver hook of a sync resolveBackend calls done synchronously once the backend is initialized', async (t) => {
  const backend = new InMemoryBackend()
  const resolver = createBackendResolver(() => backend)
  const first = { throttleBackend: null as unknown }
  let firstDone = false
  resolver(first as never, {} as never, () => { firstDone = true })
  t.equal(first.throttleBackend, backend)
  t.equal(firstDone, false, 'the first request waits for the one-time initialization')
  await backend.initialize()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(firstDone, true)
  const next = { throttleBackend: null as unknown }
  let nextDone = false
  resolver(next as never, {} as never, () => { nextDone = true })
  t.equal(nextDone, true, 'afterwards: synchronous, no promise per request')
})
