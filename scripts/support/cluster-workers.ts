/**
 * node:cluster workers for tests and benchmarks: this process is their primary. `forkWorker`
 * starts one with `--import tsx` and waits for its first message of type `ready` or `listening`.
 * Workers do not keep this process alive, and stop when it exits (their IPC channel closes).
 */
import cluster, { type Worker } from 'node:cluster'

export async function forkWorker (exec: string, env: Record<string, string> = {}): Promise<{ worker: Worker, first: Record<string, unknown> }> {
  cluster.setupPrimary({ exec, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const worker = cluster.fork(env)
  const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (m?.type !== 'ready' && m?.type !== 'listening') return
      worker.off('message', onMessage)
      resolve(m)
    }
    worker.on('message', onMessage)
    worker.once('exit', (code) => { reject(new Error(`cluster worker exited with ${code} before it was ready`)) })
  })
  release(worker)
  return { worker, first }
}

/** Lets this process exit while the worker lives (the worker follows it out). */
export function release (worker: Worker): void {
  worker.process.unref()
  ;(worker.process.channel as { unref?: () => void } | undefined)?.unref?.()
}

/** Sends `message` and resolves the worker's reply of type `done` with the same id, keeping this process alive meanwhile. */
export async function ask<T> (worker: Worker, message: { type: string, id: string } & Record<string, unknown>): Promise<T> {
  const channel = worker.process.channel as { ref?: () => void, unref?: () => void } | undefined
  channel?.ref?.()
  try {
    return await new Promise<T>((resolve) => {
      const onMessage = (m: { type?: string, id?: string }): void => {
        if (m?.type !== 'done' || m.id !== message.id) return
        worker.off('message', onMessage)
        resolve(m as T)
      }
      worker.on('message', onMessage)
      worker.send(message)
    })
  } finally {
    channel?.unref?.()
  }
}
