/**
 * ClusterBackend's worker side: one channel per worker process to the primary, shared by every
 * ClusterBackend of the process. A request has a fresh id and its reply settles it; the requests of
 * one turn of the event loop leave together, in one message, at the turn's end. The channel
 * listens only while some backend is open, so it never keeps a worker alive on its own.
 */
import { envelope, isClusterMessage, PROTOCOL_VERSION, TAG, unbatch, type ClusterOp, type ClusterReply, type ClusterRequest } from './cluster-protocol.js'

/**
 * The error of a request the primary could not answer, or that could not reach it: the driver
 * error of ClusterBackend (its guard wraps it as `BackendError`, `cause` set to it).
 */
export class ClusterPrimaryError extends Error {
  /** The primary's error code, when it had one (e.g. `TRAFFIK_ERR_UNSUPPORTED`). */
  readonly code: string | undefined

  constructor (message: string, code?: string) {
    super(message)
    this.name = 'ClusterPrimaryError'
    this.code = code
  }
}

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
  /** When an unanswered request is dropped (performance.now() ms); Infinity keeps it until the channel closes. */
  readonly expiresAt: number
}

/** How often requests the primary never answered are dropped (their callers had their deadline already). */
const SWEEP_MS = 1000

class Channel {
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  #users = 0
  #sweep: NodeJS.Timeout | undefined
  /** Requests of this turn of the event loop, sent together when it ends. */
  #outbox: ClusterRequest[] = []
  readonly #flush = (): void => {
    const batch = this.#outbox
    this.#outbox = []
    if (batch.length > 0) this.#send(envelope('batch', batch), batch)
  }

  readonly #onMessage = (message: unknown): void => {
    if (!isClusterMessage(message)) return
    for (const reply of unbatch<ClusterReply>(message, 'replies')) this.#settle(reply)
  }

  readonly #onDisconnect = (): void => {
    this.#failAll('the IPC channel to the node:cluster primary closed (the primary exited)')
  }

  #settle (reply: ClusterReply): void {
    const pending = this.#pending.get(reply.id)
    if (pending === undefined) return
    this.#pending.delete(reply.id)
    if (reply.error === undefined) pending.resolve(reply.value)
    else pending.reject(new ClusterPrimaryError(reply.error.message, reply.error.code))
  }

  /** A backend starts using the channel. */
  open (): void {
    if (this.#users++ > 0) return
    process.on('message', this.#onMessage)
    process.on('disconnect', this.#onDisconnect)
  }

  /** A backend stops using it; the last one stops listening (pending requests fail). */
  close (): void {
    if (this.#users === 0 || --this.#users > 0) return
    process.off('message', this.#onMessage)
    process.off('disconnect', this.#onDisconnect)
    this.#failAll('the ClusterBackend was closed')
  }

  /**
   * Sends one request and resolves the primary's answer. `keepMs` is how long an unanswered
   * request is kept (the backend's deadline bounds the caller; 0 keeps it until the channel closes).
   */
  request (namespace: string, op: ClusterOp, args: readonly unknown[], keepMs: number): Promise<unknown> {
    if (process.send === undefined || !process.connected) {
      return Promise.reject(new ClusterPrimaryError('this worker is not connected to its node:cluster primary'))
    }
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, expiresAt: keepMs > 0 ? performance.now() + 2 * keepMs : Infinity })
      if (keepMs > 0) this.#sweep ??= setInterval(() => { this.#drop() }, SWEEP_MS).unref()
      const request: ClusterRequest = { [TAG]: PROTOCOL_VERSION, id, ns: namespace, op, args }
      // The handshake travels alone, so that a primary of another protocol version can read it
      // and answer which version it speaks.
      if (op === 'hello') this.#send(request, [request])
      else if (this.#outbox.push(request) === 1) setImmediate(this.#flush)
    })
  }

  /** Sends one message carrying `requests`; a failed send fails each of them. */
  #send (message: object, requests: readonly ClusterRequest[]): void {
    const fail = (reason: string): void => {
      for (const { id } of requests) {
        const pending = this.#pending.get(id)
        if (pending === undefined) continue
        this.#pending.delete(id)
        pending.reject(new ClusterPrimaryError(reason))
      }
    }
    if (process.send === undefined || !process.connected) {
      fail('this worker is not connected to its node:cluster primary')
      return
    }
    process.send(message, undefined, undefined, (error: Error | null) => {
      if (error !== null) fail(`could not send to the node:cluster primary: ${error.message}`)
    })
  }

  /** Drops requests past their keep time (their callers were answered by the deadline). */
  #drop (): void {
    const now = performance.now()
    for (const [id, pending] of this.#pending) {
      if (pending.expiresAt > now) continue
      this.#pending.delete(id)
      pending.reject(new ClusterPrimaryError('the node:cluster primary did not answer'))
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweep)
      this.#sweep = undefined
    }
  }

  #failAll (reason: string): void {
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    this.#outbox = []
    for (const entry of pending) entry.reject(new ClusterPrimaryError(reason))
  }
}

/** This process's channel to its primary. */
export const channel = new Channel()
