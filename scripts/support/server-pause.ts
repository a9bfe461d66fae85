/**
 * Hanging a test server on purpose (SIGSTOP) and continuing it (SIGCONT), deterministically.
 *
 * `kill()` returns once the signal is queued, not once the server has stopped: the kernel stops
 * each thread only when that thread next runs, and a worker thread that is running meanwhile
 * keeps answering. On a busy machine memcached's threads went on for up to ~160 ms after
 * `kill('SIGSTOP')` returned, answering requests a test had meant for a hung server. So `pause`
 * resolves only once every thread reports stopped and a fresh request goes unanswered, and
 * `resume` only once the server answers again.
 */
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createConnection } from 'node:net'

/** A request line the server answers at once, and what its answer looks like. */
export interface Probe {
  readonly line: string
  readonly expect: RegExp
}

/** How long a probe of a paused server must stay unanswered. */
const SILENCE_MS = 100
/** How long stopping or continuing may take before the helper gives up. */
const SETTLE_MS = 5000

/** Thread states are read from /proc where there is one (Linux); elsewhere the probe decides alone. */
const HAS_PROC = existsSync('/proc/self/task')

export async function pauseServer (child: ChildProcess, host: string, port: number, probe: Probe): Promise<void> {
  assertRunning(child)
  child.kill('SIGSTOP')
  const deadline = Date.now() + SETTLE_MS
  while (!everyThreadStopped(child.pid!)) {
    assertRunning(child)
    if (Date.now() > deadline) throw new Error(`the server on port ${port} still had running threads ${SETTLE_MS} ms after SIGSTOP`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  if (await answers(host, port, probe, SILENCE_MS)) throw new Error(`the server on port ${port} still answers after SIGSTOP`)
}

export async function resumeServer (child: ChildProcess, host: string, port: number, probe: Probe): Promise<void> {
  assertRunning(child)
  child.kill('SIGCONT')
  const deadline = Date.now() + SETTLE_MS
  while (!await answers(host, port, probe, 250).catch(() => false)) {
    if (Date.now() > deadline) throw new Error(`the server on port ${port} did not answer within ${SETTLE_MS} ms of SIGCONT`)
  }
}

function assertRunning (child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server process has exited (${child.exitCode ?? child.signalCode})`)
}

/** Whether every thread of `pid` is in the stopped state ('T' in /proc/<pid>/task/<tid>/stat). */
function everyThreadStopped (pid: number): boolean {
  if (!HAS_PROC) return true
  return readdirSync(`/proc/${pid}/task`).every((tid) => {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      return true // the thread ended meanwhile
    }
    // `<tid> (<name>) <state> ...`; the name may itself hold ') '.
    return stat[stat.lastIndexOf(')') + 2] === 'T'
  })
}

/** Sends the probe on a fresh connection: true if the expected answer comes within `ms`, false if nothing does. */
async function answers (host: string, port: number, probe: Probe, ms: number): Promise<boolean> {
  return await new Promise((resolve, reject) => {
    const socket = createConnection({ host, port })
    let data = ''
    const finish = (answered: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answered)
    }
    const timer = setTimeout(() => { finish(false) }, ms)
    socket.on('connect', () => socket.write(probe.line))
    socket.on('data', (chunk) => {
      data += chunk.toString()
      if (probe.expect.test(data)) finish(true)
    })
    socket.on('error', (error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    })
  })
}
