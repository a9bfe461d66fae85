/**
 * Counting by response: an admitted request was charged before its handler ran, like any other;
 * once its response is known, the charges of the limits whose `countIf` says the response does
 * not count are given back (exactly those charges, with the moment they were made, so a refund
 * never gives back more than the charge still holds). A client that leaves before the response
 * keeps or gets back its charges as `countAborted` says. Each request is settled once.
 */
import { refundCharges, type Charge } from './charges.js'
import type { EnforceRequest } from './enforce.js'
import type { Limit } from './limit.js'
import { Outcome } from './limit-group.js'
import { isPromiseLike } from './maybe-promise.js'

/** The reply fields the hooks read. A Fastify reply fits. */
export interface CountingReply {
  readonly statusCode: number
}

type Done = () => void

export interface ResponseCountingHooks {
  /** For `onResponse`: the response is known. */
  onResponse(request: EnforceRequest, reply: CountingReply, done: Done): void
  /** For `onRequestAbort`: the client went away first. */
  onRequestAbort(request: EnforceRequest, done: Done): void
}

/** Requests already settled (an abort, then a response written into the closed socket). */
const settled = new WeakSet<Outcome>()

/** The hooks of a route whose limits include some counted by response; undefined when none is. */
export function responseCounting (limits: readonly Limit[]): ResponseCountingHooks | undefined {
  const counted = limits.filter((limit) => limit.counting !== undefined)
  if (counted.length === 0) return undefined
  return {
    onResponse (request, reply, done) {
      const outcome = heldBy(request)
      if (outcome === undefined) {
        done()
        return
      }
      settle(request, outcome, counted, (limit) => limit.counting!.countIf(request as never, reply)).then(done, done)
    },
    onRequestAbort (request, done) {
      const outcome = heldBy(request)
      if (outcome === undefined) {
        done()
        return
      }
      settle(request, outcome, counted, (limit) => limit.counting!.countAborted).then(done, done)
    }
  }
}

/** The outcome of an admitted request not settled yet. */
function heldBy (request: EnforceRequest): Outcome | undefined {
  const outcome = request.rateLimit
  if (!(outcome instanceof Outcome) || !outcome.decision.allowed || settled.has(outcome)) return undefined
  settled.add(outcome)
  return outcome
}

/** Gives back the charges of every counted limit whose rule says this request does not count. */
async function settle (request: EnforceRequest, outcome: Outcome, counted: readonly Limit[], counts: (limit: Limit) => boolean | PromiseLike<boolean>): Promise<void> {
  const charges = outcome.charges
  if (charges.length === 0) return
  const refunds: Charge[] = []
  for (const limit of counted) {
    let keep: boolean
    try {
      const answer = counts(limit)
      keep = isPromiseLike(answer) ? await answer : answer
    } catch (error) {
      // The response is gone: a rule that throws keeps the charge (limited early, never late).
      request.log?.warn({ err: error, uid: limit.uid }, 'fastify-traffik: countIf threw; the request counts')
      continue
    }
    if (keep === true) continue
    for (const charge of charges) if (charge.op.key.startsWith(limit.keyPrefix)) refunds.push(charge)
  }
  if (refunds.length > 0) await refundCharges(refunds)
}
