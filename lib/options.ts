/**
 * Option validation shared by every room: a leaf, like errors.ts, that the backends, strategies,
 * headers, throttles and the plugin use so that bad options fail the same way everywhere.
 */
import { invalidOption } from './errors.js'

/**
 * Rejects the first key of `options` that is not in `known`, so a typo (`maxkeys`, `timeout`)
 * cannot leave a default in place silently. Throws `TRAFFIK_ERR_INVALID_OPTION` naming the key,
 * what `where` knows, and the value, e.g. `Invalid option 'maxkeys': InMemoryBackend knows
 * namespace, persistent, timeoutMs, maxKeys, ... (got 5)`.
 * @param where what the options configure, as the message names it (a class, or a path such as `headers['x-a']`)
 * @param path where the options sit, prefixed to the key in the message (`defaults` → `defaults.limit`)
 */
export function rejectUnknownKeys (where: string, options: object, known: readonly string[], path?: string): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      invalidOption(path === undefined ? key : `${path}.${key}`, `${where} knows ${known.length === 0 ? 'no options' : known.join(', ')}`, (options as Record<string, unknown>)[key])
    }
  }
}
