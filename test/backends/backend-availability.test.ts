/**
 * A backend's availability, through the public ThrottleBackend contract (a custom backend told to
 * answer, fail or hang, and whose connection fails until told otherwise): states, transitions
 * reported once each, degraded start with background reconnection, close while connecting, and
 * timeouts that name the last error seen. The state machine itself is checked against a
 * reference model with fast-check.
 */
import fc from 'fast-check'
import t from 'tap'
import type { BackendTransition, ThrottleBackendOptions } from '../../lib/index.js'
import { Availability } from '../../lib/backends/backend-availability.js'
import { CommandedBackend, DriverError } from '../reliability/commanded-backend.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A CommandedBackend whose connection fails while `reachable` is false, or waits until closed while `hangs` is true. */
class FlakyStartBackend extends CommandedBackend {
  reachable = false
  hangs = false
  attempts = 0
  closes = 0

  constructor (options: ThrottleBackendOptions = {}) {
    super(options)
  }

  protected override async onInitialize (signal?: AbortSignal): Promise<void> {
    this.attempts++
    if (this.hangs) {
      await new Promise<void>((resolve) => signal?.addEventListener('abort', () => { resolve() }))
      return
    }
    if (!this.reachable) throw new DriverError('connect ECONNREFUSED (commanded)')
  }

  protected override async onClose (): Promise<void> {
    this.closes++
    await super.onClose()
  }
}

function record (backend: CommandedBackend): BackendTransition[] {
  const seen: BackendTransition[] = []
  backend.onTransition((transition) => { seen.push(transition) })
  return seen
}

type CodedError = Error & { code: string, cause: Error }

/** The error `pending` rejects with. */
async function failure (pending: Promise<unknown>): Promise<CodedError> {
  try {
    await pending
  } catch (error) {
    return error as CodedError
  }
  throw new Error('expected a rejection')
}

async function until (condition: () => boolean): Promise<void> {
  const giveUpAt = Date.now() + 5000
  while (!condition() && Date.now() < giveUpAt) await sleep(10)
}

t.test('an up backend is down from its first failed call and recovered at its next answer, each reported once', async (t) => {
  const backend = new CommandedBackend()
  const seen = record(backend)
  t.equal(backend.state, 'idle')
  await backend.initialize()
  t.equal(backend.state, 'up')
  backend.behaviour = 'fail'
  for (let i = 0; i < 5; i++) await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND' })
  t.equal(backend.state, 'down')
  backend.behaviour = 'ok'
  await backend.get('k')
  await backend.get('k')
  t.equal(backend.state, 'up')
  t.same(seen.map((s) => s.type), ['down', 'recovered'], 'five failures, one down; two answers, one recovered')
  t.match(seen[0]!.error?.message, /connection refused/)
  t.ok(seen[1]!.downtimeMs! >= 0, 'the recovery says how long the outage lasted')
  await backend.close()
  t.equal(backend.state, 'closed')
})

t.test('errors of the caller (bad input) and refusals of a closed backend are not outages', async (t) => {
  const backend = new CommandedBackend()
  const seen = record(backend)
  await backend.initialize()
  await backend.close()
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND_CLOSED' })
  t.same(seen, [])
})

t.test('a timeout names the last error seen before it, and keeps it as cause', async (t) => {
  const backend = new CommandedBackend({ timeoutMs: 25 })
  await backend.initialize()
  t.teardown(async () => { await backend.close() })
  backend.behaviour = 'fail'
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND' })
  backend.behaviour = 'hang'
  const error = await failure(backend.get('k'))
  t.equal(error.code, 'TRAFFIK_ERR_BACKEND_TIMEOUT')
  t.match(error.message, /did not answer within 25 ms \(last error seen: .*connection refused \(commanded\)\)/)
  t.match(error.cause.message, /connection refused/)
  backend.behaviour = 'ok'
  await backend.get('k')
  backend.behaviour = 'hang'
  const fresh = await failure(backend.get('k'))
  t.notMatch(fresh.message, /last error seen/, 'an answer in between clears the last error')
})

t.test("start('degraded'): no store is called while it cannot connect; it reconnects in the background and takes over", async (t) => {
  const backend = new FlakyStartBackend({ timeoutMs: 50 })
  const seen = record(backend)
  t.teardown(async () => { await backend.close() })
  await backend.start('degraded')
  t.equal(backend.state, 'degraded')
  t.equal(backend.initialized, false)
  const error = await failure(backend.get('k'))
  t.equal(error.code, 'TRAFFIK_ERR_BACKEND_UNAVAILABLE', 'a call fails at once')
  t.match(error.message, /not connected yet .*ECONNREFUSED/, 'naming the connection error')
  t.match(error.cause.message, /ECONNREFUSED/)
  t.equal(backend.calls.ok + backend.calls.fail + backend.calls.hang, 0, 'without reaching the store')
  t.equal(((await backend.healthCheck()).error as CodedError | undefined)?.code, 'TRAFFIK_ERR_BACKEND_UNAVAILABLE', 'the health probe says so too')
  await until(() => backend.attempts >= 3)
  t.ok(backend.attempts >= 3, 'it keeps trying in the background')
  await backend.start('degraded')
  t.equal(backend.state, 'degraded', 'starting again while degraded changes nothing')

  backend.reachable = true
  await until(() => backend.state === 'up')
  t.equal(backend.state, 'up', 'it took over by itself')
  t.equal(await backend.get('k'), null)
  t.same(seen.map((s) => s.type), ['degraded', 'recovered'])
})

t.test('close() while degraded stops the background attempts; the backend can be started again', async (t) => {
  const backend = new FlakyStartBackend({ timeoutMs: 50 })
  await backend.start('degraded')
  await backend.close()
  const attempts = backend.attempts
  await sleep(700)
  t.equal(backend.attempts, attempts, 'no attempt after close')
  t.equal(backend.state, 'closed')
  backend.reachable = true
  await backend.start('degraded')
  t.equal(backend.state, 'up', 'started again')
  await backend.close()
})

t.test('close() during a connection attempt aborts it and releases what it opened', async (t) => {
  const backend = new FlakyStartBackend()
  backend.hangs = true
  const starting = backend.initialize()
  await sleep(20)
  const closesBefore = backend.closes
  await backend.close()
  await t.rejects(starting, { code: 'TRAFFIK_ERR_BACKEND_CLOSED' }, 'the attempt ends as closed')
  t.equal(backend.closes, closesBefore + 1, 'onClose ran after the attempt ended')
  t.equal(backend.initialized, false)
})

t.test("start('required') rejects with the coded error, and a failed start can be retried", async (t) => {
  const backend = new FlakyStartBackend()
  await t.rejects(backend.start(), { code: 'TRAFFIK_ERR_BACKEND', message: /ECONNREFUSED/ })
  t.equal(backend.state, 'idle')
  backend.reachable = true
  await backend.start()
  t.equal(backend.state, 'up')
  await backend.close()
})

t.test('a listener that throws does not break the call that changed the state', async (t) => {
  const backend = new CommandedBackend()
  backend.onTransition(() => { throw new Error('logger broke') })
  const seen = record(backend)
  const unlisten = backend.onTransition(() => { seen.push({ type: 'down' }) })
  unlisten()
  await backend.initialize()
  backend.behaviour = 'fail'
  await t.rejects(backend.get('k'), { code: 'TRAFFIK_ERR_BACKEND' })
  t.same(seen.map((s) => s.type), ['down'], 'the other listener still heard it; a removed one did not')
  await backend.close()
})

// ---- the state machine against a reference model ----

type Event = 'connecting' | 'connectFailed' | 'succeeded' | 'failed' | 'degrade' | 'close'
type State = 'idle' | 'connecting' | 'up' | 'degraded' | 'down' | 'closed'

/** The reference: each event's next state and what it reports, as a table. */
const MODEL: Record<Event, (state: State) => { next: State, reports?: BackendTransition['type'] }> = {
  connecting: (s) => ({ next: s === 'idle' || s === 'closed' ? 'connecting' : s }),
  connectFailed: (s) => ({ next: s === 'connecting' ? 'idle' : s }),
  succeeded: (s) => ({ next: 'up', reports: s === 'degraded' || s === 'down' ? 'recovered' : undefined }),
  failed: (s) => s === 'up' ? { next: 'down', reports: 'down' } : { next: s },
  degrade: (s) => s === 'idle' || s === 'connecting' ? { next: 'degraded', reports: 'degraded' } : { next: s },
  close: () => ({ next: 'closed' })
}

t.test('Availability follows the reference model; outages and recoveries alternate', async (t) => {
  const events = fc.constantFrom<Event>('connecting', 'connectFailed', 'succeeded', 'failed', 'degrade', 'close')
  fc.assert(fc.property(fc.array(events, { maxLength: 60 }), (sequence) => {
    const availability = new Availability()
    const reported: Array<BackendTransition['type']> = []
    // Between two closes, outages and recoveries alternate: no outage is reported twice, no recovery without one.
    let outage = false
    let alternates = true
    availability.listen((transition) => {
      reported.push(transition.type)
      if ((transition.type === 'recovered') !== outage) alternates = false
      outage = transition.type !== 'recovered'
    })
    let state: State = 'idle'
    const expected: Array<BackendTransition['type']> = []
    for (const event of sequence) {
      const error = new Error(event)
      if (event === 'failed' || event === 'degrade' || event === 'connectFailed') availability[event](error)
      else availability[event]()
      if (event === 'close') outage = false
      const step = MODEL[event](state)
      state = step.next
      if (step.reports !== undefined) expected.push(step.reports)
      if (availability.state !== state) return false
      if (event === 'succeeded' && availability.lastError !== undefined) return false
      if ((event === 'failed' || event === 'degrade') && availability.lastError !== error) return false
    }
    return alternates && JSON.stringify(reported) === JSON.stringify(expected)
  }), { numRuns: 500 })
  t.pass('500 random sequences')
})
