/**
 * Per-message limits for WebSockets (e.g. `@fastify/websocket`). Connection limits need nothing
 * special: a route's limits run in its hooks before the upgrade, so a rejected client gets an HTTP
 * 429 and no socket. Messages are limited here: each one is charged to the throttle (keyed by the
 * upgrade request, so by the client), in arrival order; a message over the limit is answered
 * with a throttled frame or closes the socket, as configured. The socket is duck-typed (`ws` fits).
 */
import type { Decision } from '../../types/decision.js'
import { invalidOption } from '../errors.js'
import { retryAfterSeconds } from '../decision.js'
import type { ThrottleRequest } from './contracts.js'
import type { Throttle } from './throttle.js'

/** The socket fields the helper uses. A `ws` WebSocket fits. */
export interface MessageSocket {
  on(event: 'message', listener: (data: any, isBinary: boolean) => void): unknown
  off?(event: 'message', listener: (data: any, isBinary: boolean) => void): unknown
  send(data: string): unknown
  close(code?: number, reason?: string): unknown
  readonly readyState?: number
}

/**
 * The frame sent for a throttled message (`onThrottled: 'frame'`), as JSON:
 * `{ "type": "rate_limited", "retryAfter": 12, "retryAfterMs": 11500, "limit": 10, "remaining": 0, "resetMs": 11500 }`.
 * `retryAfter` is whole seconds rounded up, -1 when the message can never fit (its cost exceeds the limit).
 */
export interface ThrottledFrame {
  type: 'rate_limited'
  retryAfter: number
  retryAfterMs: number
  limit: number
  remaining: number
  resetMs: number
}

export interface LimitMessagesOptions {
  /** Receives every message the throttle allows, in arrival order. Sync or async. */
  onMessage: (data: any, isBinary: boolean) => unknown
  /**
   * What a throttled message gets: `'frame'` answers with a `ThrottledFrame` and keeps the socket
   * open (the message is dropped); `'close'` closes the socket with `closeCode`.
   * @default 'frame'
   */
  onThrottled?: 'frame' | 'close'
  /**
   * Close code for `onThrottled: 'close'`: 1008 (policy violation) or 1013 (try again later).
   * @default 1008
   */
  closeCode?: 1008 | 1013
  /**
   * Cost of one message: a number, or a function of the message (e.g. its size).
   * @default the throttle's cost
   */
  cost?: number | ((data: any, isBinary: boolean) => number)
  /**
   * Called when charging a message or `onMessage` fails. By default the error is logged through
   * `request.log` and the socket closed with 1011 (internal error).
   */
  onError?: (error: Error) => void
}

/** Stops limiting (and forwarding) messages. */
export type StopLimiting = () => void

const OPEN = 1

/** Builds the throttled frame of a decision. */
export function throttledFrame (decision: Decision): ThrottledFrame {
  const never = decision.retryAfterMs < 0
  return {
    type: 'rate_limited',
    retryAfter: retryAfterSeconds(decision),
    retryAfterMs: never ? -1 : decision.retryAfterMs,
    limit: decision.limit,
    remaining: decision.remaining,
    resetMs: decision.resetMs
  }
}

/**
 * Limits the messages of one socket with `throttle`, forwarding allowed ones to `onMessage`.
 *
 * ```ts
 * app.get('/chat', { websocket: true }, (socket, request) => {
 *   limitMessages(socket, request, messages, { onMessage: (data) => socket.send(data) })
 * })
 * ```
 */
export function limitMessages (socket: MessageSocket, request: ThrottleRequest, throttle: Throttle, options: LimitMessagesOptions): StopLimiting {
  if (options === null || typeof options !== 'object') invalidOption('limitMessages options', 'an object', options)
  const { onMessage, onThrottled = 'frame', closeCode = 1008, cost, onError } = options
  if (typeof onMessage !== 'function') invalidOption('limitMessages.onMessage', 'a function (data, isBinary) => unknown', onMessage)
  if (onThrottled !== 'frame' && onThrottled !== 'close') invalidOption('limitMessages.onThrottled', "'frame' or 'close'", onThrottled)
  if (closeCode !== 1008 && closeCode !== 1013) invalidOption('limitMessages.closeCode', '1008 or 1013', closeCode)
  if (cost !== undefined && typeof cost !== 'function' && !(Number.isSafeInteger(cost) && cost >= 0)) {
    invalidOption('limitMessages.cost', 'a non-negative integer or a function', cost)
  }
  const fail = onError ?? ((error: Error): void => {
    request.log?.warn({ err: error }, 'fastify-traffik: a WebSocket message could not be limited; closing')
    if (isOpen(socket)) socket.close(1011, 'internal error')
  })

  let stopped = false
  // Messages are decided one after another, so they are forwarded in the order they arrived.
  let queue: Promise<void> = Promise.resolve()
  const handle = async (data: unknown, isBinary: boolean): Promise<void> => {
    if (stopped) return
    const messageCost = typeof cost === 'function' ? cost(data, isBinary) : cost
    const decision = await throttle.hit(request, messageCost === undefined ? {} : { cost: messageCost })
    if (stopped) return
    if (decision.allowed) {
      await onMessage(data, isBinary)
      return
    }
    if (!isOpen(socket)) return
    if (onThrottled === 'close') {
      stop()
      socket.close(closeCode, 'rate limited')
      return
    }
    socket.send(JSON.stringify(throttledFrame(decision)))
  }
  const listener = (data: unknown, isBinary: boolean): void => {
    queue = queue.then(async () => { await handle(data, isBinary) }).catch((error: unknown) => {
      fail(error instanceof Error ? error : new Error(String(error)))
    })
  }
  const stop: StopLimiting = () => {
    stopped = true
    socket.off?.('message', listener)
  }
  socket.on('message', listener)
  return stop
}

function isOpen (socket: MessageSocket): boolean {
  return socket.readyState === undefined || socket.readyState === OPEN
}
