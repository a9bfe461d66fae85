/**
 * ClusterBackend against a real primary: this test process is the node:cluster primary, and a
 * forked worker runs the conformance kit (every strategy, every primitive, locks, the deadline
 * with the primary frozen by SIGSTOP) and the startup checks.
 */
import cluster from 'node:cluster'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ClusterBackend, FixedWindow, TokenBucket, type ClusterPrimary } from '../../lib/index.js'
import { isClusterMessage, PROTOCOL_VERSION, TAG } from '../../lib/backends/cluster-protocol.js'
import { ask, forkWorker } from '../../scripts/support/cluster-workers.js'
import type { CaseResult, Outcome } from '../../scripts/support/cluster-kit-worker.js'

const exec = fileURLToPath(new URL('../../scripts/support/cluster-kit-worker.ts', import.meta.url))
const REFUSED = 'refused-'
const attach = (): ClusterPrimary => ClusterBackend.attachPrimary({ namespaces: (ns) => !ns.startsWith(REFUSED), sweepIntervalMs: 1000 })
let primary = attach()
const { worker } = await forkWorker(exec)
t.teardown(async () => {
  worker.kill()
  await primary.detach()
})

t.test('the conformance kit passes in a worker against the primary', async (t) => {
  const reply = await ask<{ results?: CaseResult[], error?: string }>(worker, { type: 'conformance', id: 'kit', refusedPrefix: REFUSED })
  t.equal(reply.error, undefined, 'the kit ran')
  const results = reply.results ?? []
  t.ok(results.length >= 20, `${results.length} cases ran`)
  t.ok(results.some((r) => /stops answering/.test(r.name)), 'the deadline case ran (primary frozen)')
  for (const result of results) t.equal(result.error, undefined, result.name)
})

t.test('a worker whose primary never attached gets a coded error at startup, not a hang', async (t) => {
  await primary.detach()
  const outcome = (await ask<{ outcome: Outcome }>(worker, { type: 'initialize', id: 'no-primary', namespace: 'lonely', timeoutMs: 100 })).outcome
  t.equal(outcome.ok, false)
  t.equal(outcome.code, 'TRAFFIK_ERR_BACKEND')
  t.match(outcome.message, /no node:cluster primary answered within 100 ms: call ClusterBackend\.attachPrimary\(\)/)
  primary = attach()
  const served = (await ask<{ outcome: Outcome }>(worker, { type: 'initialize', id: 'attached', namespace: 'served', timeoutMs: 2000 })).outcome
  t.same(served, { ok: true, allowed: true }, 'once a primary attached, the same worker is served (and its own messages still reach it)')
})

t.test('a primary that was detached starts from empty counters', async (t) => {
  const first = (await ask<{ outcome: Outcome }>(worker, { type: 'initialize', id: 'before', namespace: 'restart', timeoutMs: 2000 })).outcome
  t.same(first, { ok: true, allowed: true })
  const again = (await ask<{ outcome: Outcome }>(worker, { type: 'initialize', id: 'same', namespace: 'restart', timeoutMs: 2000 })).outcome
  t.same(again, { ok: true, allowed: false }, 'the primary keeps the state between workers\' calls (limit 1)')
  t.ok(primary.store('restart') !== undefined, 'the namespace has its store in the primary')
  await primary.detach()
  primary = attach()
  t.equal(primary.store('restart'), undefined)
  const after = (await ask<{ outcome: Outcome }>(worker, { type: 'initialize', id: 'after', namespace: 'restart', timeoutMs: 2000 })).outcome
  t.same(after, { ok: true, allowed: true }, 'nothing survives the primary')
})

t.test('outside a node:cluster worker: a coded error at construction', async (t) => {
  t.notOk(cluster.isWorker)
  t.throws(() => new ClusterBackend(), { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /runs in node:cluster workers.*attachPrimary\(\) in the primary/ })
})

t.test('attachPrimary checks its options, and attaches once', async (t) => {
  t.throws(() => ClusterBackend.attachPrimary(), { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /already called/ })
  await primary.detach()
  t.throws(() => ClusterBackend.attachPrimary({ maxkeys: 5 } as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /maxkeys/ })
  t.throws(() => ClusterBackend.attachPrimary({ maxKeys: 0 }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /maxKeys/ })
  t.throws(() => ClusterBackend.attachPrimary({ namespaces: 'a' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /namespaces/ })
  t.throws(() => ClusterBackend.attachPrimary({ strategies: [{}] as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /strategies/ })
  t.throws(() => ClusterBackend.attachPrimary(null as never), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
  const listed = ClusterBackend.attachPrimary({ namespaces: ['traffik'], strategies: [new TokenBucket()] })
  await listed.detach()
  await listed.detach()
  primary = attach()
})

t.test('the primary answers what it cannot do with a coded error, and ignores what is not its own', async (t) => {
  const send = async (message: Record<string, unknown>): Promise<unknown> => (await ask<{ reply: unknown }>(worker, { type: 'raw', id: `raw-${String(message.id)}`, message })).reply
  t.match(await send({ [TAG]: 99, id: 9001, ns: 'p', op: 'hello', args: [] }), { id: 9001, error: { code: 'TRAFFIK_ERR_UNSUPPORTED', message: new RegExp(`protocol 99, this primary ${PROTOCOL_VERSION}`) } }, 'another protocol version')
  t.match(await send({ [TAG]: PROTOCOL_VERSION, id: 9002, ns: 'p', op: 'explode', args: [] }), { id: 9002, error: { code: 'TRAFFIK_ERR_UNSUPPORTED', message: /unknown ClusterBackend request 'explode'/ } }, 'an unknown request')
  t.match(await send({ [TAG]: PROTOCOL_VERSION, id: 9003, ns: 'p', op: 'evaluate', args: [[['{"kind":"named","name":"mine"}', 'k', 1, 1000, 1, null]], 'hit'] }), { id: 9003, error: { message: /strategy 'mine' is not a built-in/ } }, 'a strategy it was not given')
  t.match(await send({ [TAG]: PROTOCOL_VERSION, id: 9004, ns: 'p', op: 'set', args: ['k', 5, null] }), { id: 9004, error: { code: 'TRAFFIK_ERR_INVALID_OPTION' } }, 'an asynchronous call that fails')
  t.match(await send({ [TAG]: PROTOCOL_VERSION, id: 9005, ns: 'p', op: 'multiSet', args: [[['a', '1']], 1000] }), { id: 9005, value: undefined }, 'an asynchronous call that succeeds')
  t.equal(await send({ [TAG]: PROTOCOL_VERSION, id: 'not-a-number', ns: 'p', op: 'hello', args: [] }), null, 'a marked message without a numeric id gets no answer')
  t.equal(await send({ type: 'app-message', id: 9006 }), null, 'an unmarked message is left to the app')
  // Requests of one turn travel in one message; their replies come back in one message too.
  t.match(await send({
    [TAG]: PROTOCOL_VERSION,
    id: 0,
    batch: [
      { [TAG]: PROTOCOL_VERSION, id: 9101, ns: 'p', op: 'hello', args: [] },
      { [TAG]: PROTOCOL_VERSION, id: 9102, ns: 'p', op: 'explode', args: [] },
      { [TAG]: PROTOCOL_VERSION, id: 9103, ns: 'p', op: 'get', args: ['absent'] }
    ]
  }), { id: 0, replies: [{ id: 9101, value: { version: PROTOCOL_VERSION } }, { id: 9102, error: { code: 'TRAFFIK_ERR_UNSUPPORTED' } }, { id: 9103, value: null }] }, 'a batch is answered request by request, in one message')
})

t.test('messages are marked, so the app\'s own are told apart', async (t) => {
  t.ok(isClusterMessage({ [TAG]: 1, id: 1 }))
  t.notOk(isClusterMessage({ type: 'ready' }))
  t.notOk(isClusterMessage(null))
  t.notOk(isClusterMessage('traffik:cluster'))
  t.equal(new FixedWindow().name, 'fixed-window')
})
