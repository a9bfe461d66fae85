/**
 * The strategies a multi-process burst can measure: every strategy class the package exports
 * (anything with a `step` on its prototype), except those whose charges last only while a request
 * is in flight (Concurrency: each slot comes back when its response ends, so a burst of quick
 * requests never runs out; its exactness across processes is measured with requests held open).
 */
import * as traffik from '../../lib/index.js'

export const burstStrategyNames: readonly string[] = Object.entries(traffik)
  .filter(([, value]) => typeof value === 'function' && typeof (value as { prototype?: { step?: unknown } }).prototype?.step === 'function')
  .filter(([, value]) => new (value as new () => { heldUntilResponse?: boolean })().heldUntilResponse !== true)
  .map(([name]) => name)
  .sort()
