/**
 * Rate-limit response headers. A header style is chosen once per throttle at registration and
 * compiled into a writer; the request path only calls it. Values are always integers, and every
 * style but `false` sends `retry-after` (whole seconds, rounded up) on a rejection.
 */
import type { Decision } from '../types/decision.js'
import { invalidOption } from './errors.js'
import { customWriter, type CustomHeaders } from './headers/custom-headers.js'
import { toSeconds } from './decision.js'
import { writeRetryAfter, type HeaderTarget, type HeaderWriter } from './headers/header-target.js'
import { draft6Writer, draft7Writer, draft8Writer } from './headers/ietf-drafts.js'

export type { HeaderTarget, HeaderWriter }
export type { CustomHeaders, CustomHeaderSpec, HeaderField, HeaderWhen, ThrottledHeaderField } from './headers/custom-headers.js'

/**
 * Header styles: `'legacy'` (`x-ratelimit-*`), the IETF drafts `'draft-6'`, `'draft-7'`,
 * `'draft-8'`, a custom map, or `false` for none.
 */
export type HeadersOption = 'legacy' | 'draft-6' | 'draft-7' | 'draft-8' | false | CustomHeaders

function writeLegacy (reply: HeaderTarget, decision: Decision): void {
  reply.header('x-ratelimit-limit', decision.limit)
  reply.header('x-ratelimit-remaining', decision.remaining)
  reply.header('x-ratelimit-reset', toSeconds(decision.resetMs))
  writeRetryAfter(reply, decision)
}

function writeNothing (): void {}

/**
 * Compiles a header option into a writer. Throws `TRAFFIK_ERR_INVALID_OPTION` for unknown styles
 * and bad custom maps.
 * @param option the `headers` option (default `'legacy'`)
 */
export function compileHeaders (option: unknown = 'legacy'): HeaderWriter {
  switch (option) {
    case 'legacy': return writeLegacy
    case false: return writeNothing
    case 'draft-6': return draft6Writer()
    case 'draft-7': return draft7Writer()
    case 'draft-8': return draft8Writer()
  }
  if (option !== null && typeof option === 'object' && !Array.isArray(option)) return customWriter(option)
  return invalidOption('headers', "'legacy', 'draft-6', 'draft-7', 'draft-8', false, or a map of custom headers", option)
}
