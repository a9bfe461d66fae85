/**
 * ClusterBackend's messages between a worker and the primary (node:cluster IPC). Every message
 * carries the `traffik:cluster` field (the protocol version), so the app's own messages pass
 * untouched and anything else on the channel is ignored. One request, one reply, matched by the
 * request's id (unique per worker). The requests (and the replies) of one turn of the event loop
 * travel together in one message, a batch: one IPC write and one parse on each side instead of one
 * per decision. Everything is JSON-safe, whatever serialization the cluster uses.
 */
import type { EvaluateMode } from '../../types/backend.js'

/** The field that marks a ClusterBackend message; its value is the protocol version. */
export const TAG = 'traffik:cluster'
/** 2: requests and replies may travel in batches. */
export const PROTOCOL_VERSION = 2

/** What a worker may ask. `hello` is the handshake of `initialize()`. */
export type ClusterOp =
  | 'hello' | 'evaluate' | 'get' | 'set' | 'delete' | 'increment' | 'incrementWithTtl' | 'expire'
  | 'multiGet' | 'multiSet' | 'tryLock' | 'unlock' | 'reset' | 'clearPrefix'

/**
 * One limit of an `evaluate`: the strategy's spec (as JSON, which the primary keeps its built
 * strategy under), key, limit, windowMs, cost, chargedAt (null when absent), and a calendar
 * quota's period bounds (only when the op has them).
 */
export type WireOp = [spec: string, key: string, limit: number, windowMs: number, cost: number, chargedAt: number | null, bounds?: readonly number[]]

export interface ClusterRequest {
  readonly [TAG]: number
  readonly id: number
  /** The backend's namespace: the primary keeps one store per namespace. */
  readonly ns: string
  readonly op: ClusterOp
  readonly args: readonly unknown[]
}

export interface ClusterReply {
  readonly [TAG]: number
  readonly id: number
  readonly value?: unknown
  /** Set when the primary could not do it: the error's code (when it had one) and message. */
  readonly error?: { readonly code?: string, readonly message: string }
}

export type EvaluateArgs = [ops: WireOp[], mode: EvaluateMode]

/**
 * One message for the items of one turn of the event loop: the item itself when alone, else a
 * batch `{ [TAG], id: 0, [field]: items }` (requests in `batch`, replies in `replies`; each item
 * keeps its own id).
 */
export function envelope (field: 'batch' | 'replies', items: readonly object[]): object {
  return items.length === 1 ? items[0]! : { [TAG]: PROTOCOL_VERSION, id: 0, [field]: items }
}

/** The items a message of ours carries: those of its batch field, or the message itself. */
export function unbatch<T> (message: object, field: 'batch' | 'replies'): readonly T[] {
  const items = (message as Record<string, unknown>)[field]
  return Array.isArray(items) ? items as T[] : [message as T]
}

/** Whether `message` is one of ours (of any version). */
export function isClusterMessage (message: unknown): message is { readonly [TAG]: unknown, readonly id: unknown } {
  return message !== null && typeof message === 'object' && TAG in message
}
