/**
 * A list of client values: exact values (`'10.0.0.7'`, `'::1'`, `'user-42'`) and CIDR ranges
 * (`'10.0.0.0/8'`, `'2001:db8::/32'`). Compiled once into sets keyed by prefix length, so a
 * lookup costs one set probe per distinct prefix length, with no allocation for IPv4.
 * Written here rather than taken from a library: Node's `net.BlockList` and `ipaddr.js` both
 * parse into objects on every lookup (several microseconds each on the request path), and the
 * matcher is small enough to prove against them with property tests.
 */
import { isIP } from 'node:net'
import { invalidOption } from '../errors.js'
import { expandIpv6 } from './identifier.js'

/** Tests whether a value (a client address or identifier) is on the list. */
export type ListMatcher = (value: string) => boolean

/** A parsed address: IPv4 as an unsigned 32-bit number, IPv6 as eight 16-bit groups. */
type Address = { v4: number, v6?: undefined } | { v4?: undefined, v6: number[] }

/**
 * Parses an address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes its IPv4 address so one rule
 * covers both spellings. Undefined for anything that is not an IP address.
 */
export function parseAddress (text: string): Address | undefined {
  const family = isIP(text)
  if (family === 4) return { v4: ipv4ToNumber(text) }
  if (family !== 6) return undefined
  const zone = text.indexOf('%')
  const groups = expandIpv6((zone === -1 ? text : text.slice(0, zone)).toLowerCase())
  /* c8 ignore next -- isIP accepted it, so it expands */
  if (groups === undefined) return undefined
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return { v4: ((groups[6]! << 16) | groups[7]!) >>> 0 }
  }
  return { v6: groups }
}

function ipv4ToNumber (text: string): number {
  const [a, b, c, d] = text.split('.').map(Number) as [number, number, number, number]
  return (((a << 24) | (b << 16) | (c << 8) | d) >>> 0)
}

const MAPPED_BLOCK: readonly number[] = [0, 0, 0, 0, 0, 0xffff, 0, 0]

function maskV4 (address: number, bits: number): number {
  return bits === 0 ? 0 : (address & (0xffffffff << (32 - bits))) >>> 0
}

function maskV6 (groups: readonly number[], bits: number): string {
  let key = ''
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, bits - i * 16))
    const group = keep === 0 ? 0 : groups[i]! & ((0xffff << (16 - keep)) & 0xffff)
    key += (i === 0 ? '' : ':') + group.toString(16)
  }
  return key
}

/**
 * Compiles list entries. An entry whose text before a `/` is an IP address is a CIDR range (host
 * bits are ignored: `10.1.2.3/8` is `10.0.0.0/8`); an IPv4 range also covers the IPv4-mapped IPv6
 * spelling. Any other string is an exact value. A range with a bad prefix length, an empty
 * entry or a non-string fails with `TRAFFIK_ERR_INVALID_OPTION` naming `option`.
 */
export function compileAddressList (entries: unknown, option: string): ListMatcher {
  if (!Array.isArray(entries)) return invalidOption(option, 'an array of values, IP addresses or CIDR ranges', entries)
  const exact = new Set<string>()
  const v4 = new Map<number, Set<number>>()
  const v6 = new Map<number, Set<string>>()
  for (const entry of entries as unknown[]) {
    if (typeof entry !== 'string' || entry.length === 0) invalidOption(`${option}[]`, 'a non-empty string', entry)
    const slash = entry.lastIndexOf('/')
    let address = parseAddress(slash === -1 ? entry : entry.slice(0, slash))
    if (address === undefined) {
      exact.add(entry)
      continue
    }
    // A mapped IPv6 range such as ::ffff:10.0.0.0/104 is the IPv4 range 10.0.0.0/8.
    const mapped = address.v4 !== undefined && slash !== -1 && isIP(entry.slice(0, slash)) === 6
    const max = address.v4 !== undefined && !mapped ? 32 : 128
    const bitsText = slash === -1 ? String(max) : entry.slice(slash + 1)
    const bits = /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN
    if (!(bits <= max)) invalidOption(`${option}[]`, `a CIDR range with a prefix length of 0 to ${max}`, entry)
    if (mapped && bits < 96) {
      // Wider than the mapped block: an IPv6 range like any other.
      address = { v6: expandIpv6(entry.slice(0, slash).toLowerCase())! }
    }
    const v4Bits = mapped ? bits - 96 : bits
    if (address.v4 !== undefined) {
      addTo(v4, v4Bits, maskV4(address.v4, v4Bits))
    } else {
      const key = maskV6(address.v6, bits)
      addTo(v6, bits, key)
      // A range holding the whole IPv4-mapped block (such as ::/0) holds every IPv4 client.
      if (bits <= 96 && maskV6(MAPPED_BLOCK, bits) === key) addTo(v4, 0, 0)
    }
  }
  const v4Lengths = [...v4.keys()]
  const v6Lengths = [...v6.keys()]
  const hasRanges = v4Lengths.length > 0 || v6Lengths.length > 0
  return (value) => {
    if (exact.has(value)) return true
    if (!hasRanges) return false
    const address = parseAddress(value)
    if (address === undefined) return false
    if (address.v4 !== undefined) {
      for (const bits of v4Lengths) if (v4.get(bits)!.has(maskV4(address.v4, bits))) return true
      return false
    }
    for (const bits of v6Lengths) if (v6.get(bits)!.has(maskV6(address.v6, bits))) return true
    return false
  }
}

function addTo<T> (map: Map<number, Set<T>>, bits: number, key: T): void {
  let set = map.get(bits)
  if (set === undefined) map.set(bits, set = new Set())
  set.add(key)
}
