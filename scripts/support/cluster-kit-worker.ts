/**
 * A node:cluster worker for ClusterBackend's tests: its primary (the test process) tells it what
 * to run, and it reports back over IPC.
 * - `conformance`: the backend conformance kit against the real primary; one result per case.
 *   The deadline case freezes the primary itself (SIGSTOP), as a primary that stops answering.
 * - `initialize`: a fresh ClusterBackend's `initialize()` and one decision; what happened.
 * - `raw`: sends `message` to the primary as it is and reports the primary's reply to it (matched
 *   by its id), or `null` when none came within 500 ms.
 */
import { ClusterBackend, FixedWindow } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'

export interface CaseResult { name: string, error?: string }
export interface Outcome { ok: boolean, code?: string, message?: string, allowed?: boolean }

type Command =
  | { type: 'conformance', id: string, refusedPrefix: string }
  | { type: 'initialize', id: string, namespace: string, timeoutMs: number }
  | { type: 'raw', id: string, message: { id: unknown } & Record<string, unknown> }

async function conformance (refusedPrefix: string): Promise<CaseResult[]> {
  const cases: Array<{ name: string, fn: () => Promise<void> }> = []
  runBackendConformance({
    test: (name, fn) => { cases.push({ name, fn }) },
    makeBackend: (namespace) => new ClusterBackend({ namespace, timeoutMs: 2000 }),
    // The primary refuses this namespace, so every call comes back as the primary's error.
    makeFailingBackend: () => new ClusterBackend({ namespace: `${refusedPrefix}${Math.random().toString(36).slice(2)}` }),
    hang: {
      makeBackend: (namespace) => new ClusterBackend({ namespace }),
      freeze: () => { process.kill(process.ppid, 'SIGSTOP') },
      thaw: () => { process.kill(process.ppid, 'SIGCONT') }
    }
  })
  const results: CaseResult[] = []
  for (const { name, fn } of cases) {
    try {
      await fn()
      results.push({ name })
    } catch (error) {
      results.push({ name, error: (error as Error)?.stack ?? String(error) })
    }
  }
  return results
}

async function initialize (namespace: string, timeoutMs: number): Promise<Outcome> {
  const backend = new ClusterBackend({ namespace, timeoutMs })
  try {
    await backend.initialize()
    const [decision] = await backend.evaluate([{ strategy: new FixedWindow(), key: 'k', limit: 1, windowMs: 60_000, cost: 1 }], 'hit')
    return { ok: true, allowed: decision!.allowed }
  } catch (error) {
    return { ok: false, code: (error as { code?: string }).code, message: (error as Error).message }
  } finally {
    await backend.close()
  }
}

async function raw (message: { id: unknown }): Promise<unknown> {
  return await new Promise((resolve) => {
    const timer = setTimeout(() => { finish(null) }, 500)
    const onReply = (reply: { id?: unknown, type?: unknown }): void => { if (reply?.type === undefined && reply?.id === message.id) finish(reply) }
    function finish (reply: unknown): void {
      clearTimeout(timer)
      process.off('message', onReply)
      resolve(reply)
    }
    process.on('message', onReply)
    process.send!(message)
  })
}

process.on('message', (message: Command) => {
  if (message?.type === 'conformance') {
    conformance(message.refusedPrefix).then((results) => process.send!({ type: 'done', id: message.id, results }), (error: unknown) => process.send!({ type: 'done', id: message.id, error: String(error) }))
  } else if (message?.type === 'initialize') {
    initialize(message.namespace, message.timeoutMs).then((outcome) => process.send!({ type: 'done', id: message.id, outcome }))
  } else if (message?.type === 'raw') {
    raw(message.message).then((reply) => process.send!({ type: 'done', id: message.id, reply }))
  }
})
process.send!({ type: 'ready' })
