/**
 * Waiting for a concurrency slot (Concurrency's `maxWaitMs`): a request refused for want of a
 * slot waits in a queue per key, in arrival order, and is decided again when it reaches the head
 * and a slot may be free: at once when a request of this process gives its slots back, and by
 * polling with backoff (10 ms doubling to 200 ms) for slots given back by other processes. Past
 * its bound it is refused as it would have been at once; a client that goes away leaves the queue.
 *
 * The order is kept per process: queues are this process's memory. A request that arrives while
 * others of this process wait for the same key goes behind them even when it found a slot (it
 * gives the slot back and queues), so a steady flow cannot starve the queue.
 */
import type { Charge } from './charges.js'

/** One waiting request: `wake` makes it try again now (it is the head, or just became it). */
export interface SlotWaiter {
  wake(): void
}

const queues = new Map<string, SlotWaiter[]>()

/** Whether requests of this process wait for a slot of `key`. */
export function hasWaiters (key: string): boolean {
  return queues.has(key)
}

/** Joins the queue of `key`; true when the waiter is at its head (it may try at once). */
export function joinQueue (key: string, waiter: SlotWaiter): boolean {
  const queue = queues.get(key)
  if (queue === undefined) {
    queues.set(key, [waiter])
    return true
  }
  queue.push(waiter)
  return false
}

/** Whether `waiter` is the head of `key`'s queue. */
export function isHead (key: string, waiter: SlotWaiter): boolean {
  return queues.get(key)?.[0] === waiter
}

/** Leaves the queue (admitted, timed out, or its client gone); the next one, if it became the head, tries. */
export function leaveQueue (key: string, waiter: SlotWaiter): void {
  const queue = queues.get(key)
  if (queue === undefined) return
  const at = queue.indexOf(waiter)
  if (at < 0) return
  queue.splice(at, 1)
  if (queue.length === 0) {
    queues.delete(key)
    return
  }
  if (at === 0) queue[0]!.wake()
}

/** Slots of these charges were given back: the head waiting for each of their keys tries again. */
export function slotsReleased (charges: readonly Charge[]): void {
  for (const charge of charges) queues.get(charge.op.key)?.[0]?.wake()
}

/** The keys of held charges that requests of this process already wait for. */
export function keysWithWaiters (charges: readonly Charge[]): string | undefined {
  for (const charge of charges) if (queues.has(charge.op.key)) return charge.op.key
  return undefined
}
