/**
 * The plugin's own allow and deny lists: an `onRequest` hook on every route of the scope. A
 * denied client is refused before any route hook runs; an allowed one is recorded so every
 * throttle of the plugin lets it through untouched.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { failRequest, type CompiledLists, type ListVerdict } from '../throttle/lists.js'
import { isPromiseLike } from '../throttle/maybe-promise.js'

export function createListHook (lists: CompiledLists, allowed: WeakSet<object>) {
  return function checkLists (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const settle = (verdict: ListVerdict): void => {
      if (verdict === 'deny') {
        failRequest(request, reply, lists.refusal(), done)
        return
      }
      if (verdict === 'allow') allowed.add(request)
      done()
    }
    let verdict: ListVerdict | Promise<ListVerdict>
    try {
      verdict = lists.verdict(request, lists.valueOf(request))
    } catch (error) {
      done(error as Error)
      return
    }
    if (isPromiseLike<ListVerdict>(verdict)) Promise.resolve(verdict).then(settle, done)
    else settle(verdict)
  }
}
