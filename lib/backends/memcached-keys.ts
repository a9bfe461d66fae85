/**
 * memcached's rules for keys and expirations, in one place:
 * - keys are at most 250 bytes and (for the text protocol other clients use) carry no spaces or
 *   control characters: any other key is replaced by `<namespace>:sha256:<hex>` of the full key,
 *   so the namespace stays readable and the generation still applies;
 * - expirations are whole seconds, and values above 30 days are read as absolute Unix times.
 */
import { createHash } from 'node:crypto'

/** memcached's key length limit, in bytes. */
export const MAX_KEY_BYTES = 250

/** Relative expirations above this many seconds are read by memcached as Unix times. */
export const MAX_RELATIVE_EXPIRATION = 60 * 60 * 24 * 30

/** The largest expiration memcached's 32-bit field holds (a Unix time in 2106). */
const MAX_EXPIRATION = 0xffff_ffff

const PRINTABLE_ASCII = /^[\x21-\x7e]*$/
// eslint-disable-next-line no-control-regex -- control characters are exactly what memcached keys must not hold
const UNSAFE_CHARACTER = /[\x00-\x20\x7f]/

/** `fullKey` itself when memcached takes it as it is, else `<namespace>:sha256:<hex of fullKey>`. */
export function safeKey (namespace: string, fullKey: string): string {
  if (fullKey.length <= MAX_KEY_BYTES && PRINTABLE_ASCII.test(fullKey)) return fullKey
  if (fullKey.length <= MAX_KEY_BYTES && !UNSAFE_CHARACTER.test(fullKey) && Buffer.byteLength(fullKey, 'utf8') <= MAX_KEY_BYTES) {
    return fullKey
  }
  return `${namespace}:sha256:${createHash('sha256').update(fullKey, 'utf8').digest('hex')}`
}

/**
 * The expiration to send for a time to live in ms. Rounded up to whole seconds, plus one second:
 * memcached's clock ticks once per second, so an item given n seconds lives between n-1 and n
 * seconds; n = ceil(ttl) + 1 guarantees at least `ttlMs`. Beyond 30 days the value is sent as an
 * absolute Unix time computed from this host's clock (the protocol reads it that way).
 */
export function expirationOf (ttlMs: number, nowMs: number = Date.now()): number {
  const seconds = Math.ceil(ttlMs / 1000) + 1
  if (seconds <= MAX_RELATIVE_EXPIRATION) return seconds
  const absolute = Math.ceil(nowMs / 1000) + seconds
  // The protocol's field is 32 bits (Unix times up to 2106): a longer life is "never expires".
  return absolute <= MAX_EXPIRATION ? absolute : 0
}
