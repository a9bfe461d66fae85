/**
 * Who is being limited. The default is the client address Fastify computed (`request.ip`, which
 * honours `trustProxy`), normalised so one client cannot dodge its limit by rotating addresses it owns.
 */
import { createHash } from 'node:crypto'

/** Return this from an identifier to exempt the request: no limit, no headers, no backend call. */
export const EXEMPTED: unique symbol = Symbol.for('fastify-traffik.exempted')

/** Identifiers longer than this are replaced by a hash so keys stay bounded. */
export const MAX_IDENTIFIER_LENGTH = 256

/** Used when a request has no address (its socket is already gone). */
export const UNKNOWN_CLIENT = 'unknown'

/**
 * The default identifier: `request.ip`; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) counts as its IPv4
 * address, and other IPv6 addresses are masked to their /64, the block one subscriber usually holds.
 */
export function defaultIdentifier (request: { ip?: string }): string {
  const ip = request.ip
  if (typeof ip !== 'string' || ip.length === 0) return UNKNOWN_CLIENT
  if (!ip.includes(':')) return ip
  return normalizeIpv6(ip)
}

/** `::ffff:a.b.c.d` → `a.b.c.d`; other IPv6 → `xxxx:xxxx:xxxx:xxxx::/64` (lower-case, zero-padded). */
export function normalizeIpv6 (ip: string): string {
  const zone = ip.indexOf('%')
  const address = (zone === -1 ? ip : ip.slice(0, zone)).toLowerCase()
  const groups = expandIpv6(address)
  if (groups === undefined) return address
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`
  }
  const prefix = groups.slice(0, 4).map((g) => g.toString(16).padStart(4, '0')).join(':')
  return `${prefix}::/64`
}

/** Eight 16-bit groups, or undefined when `address` is not IPv6 text (lower-case, no zone). */
export function expandIpv6 (address: string): number[] | undefined {
  let text = address
  const lastColon = text.lastIndexOf(':')
  const last = text.slice(lastColon + 1)
  if (last.includes('.')) {
    // An embedded IPv4 address fills the last two groups.
    const octets = last.split('.').map((o) => (/^\d{1,3}$/.test(o) ? Number(o) : NaN))
    if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) return undefined
    text = text.slice(0, lastColon + 1) +
      ((octets[0]! << 8) | octets[1]!).toString(16) + ':' + ((octets[2]! << 8) | octets[3]!).toString(16)
  }
  const double = text.indexOf('::')
  if (double !== text.lastIndexOf('::')) return undefined
  const head = parseGroups(double === -1 ? text : text.slice(0, double))
  const tail = parseGroups(double === -1 ? '' : text.slice(double + 2))
  if (head === undefined || tail === undefined) return undefined
  if (double === -1) return head.length === 8 ? head : undefined
  const zeros = 8 - head.length - tail.length
  if (zeros < 1) return undefined
  return [...head, ...new Array<number>(zeros).fill(0), ...tail]
}

function parseGroups (text: string): number[] | undefined {
  if (text === '') return []
  const groups: number[] = []
  for (const group of text.split(':')) {
    if (!/^[0-9a-f]{1,4}$/.test(group)) return undefined
    groups.push(parseInt(group, 16))
  }
  return groups
}

/** Keeps identifiers bounded: long ones become `sha256:<hex>`. */
export function boundIdentifier (identifier: string): string {
  if (identifier.length <= MAX_IDENTIFIER_LENGTH) return identifier
  return 'sha256:' + createHash('sha256').update(identifier).digest('hex')
}
