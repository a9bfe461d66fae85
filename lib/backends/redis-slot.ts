/**
 * Redis Cluster hash slots, computed the way the server does (CRC16/XMODEM of the key, or of the
 * first non-empty `{hash tag}`, modulo 16384), so the backend can tell which keys of one call
 * live together and send each group where it belongs.
 */

const SLOTS = 16384
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

const CRC16_TABLE = buildCrc16Table()

function buildCrc16Table (): Uint16Array {
  const table = new Uint16Array(256)
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[byte] = crc
  }
  return table
}

function crc16 (bytes: Uint8Array, start: number, end: number): number {
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!
  return crc
}

/** The cluster slot of `key` (0..16383). */
export function keySlot (key: string): number {
  const bytes = Buffer.from(key)
  const open = bytes.indexOf(OPEN_BRACE)
  if (open !== -1) {
    const close = bytes.indexOf(CLOSE_BRACE, open + 1)
    // An empty tag `{}` does not count: the whole key is hashed, as the server does.
    if (close > open + 1) return crc16(bytes, open + 1, close) % SLOTS
  }
  return crc16(bytes, 0, bytes.length) % SLOTS
}

/** Indexes of `keys` grouped by slot, groups in order of first appearance. */
export function groupBySlot (keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>()
  keys.forEach((key, index) => {
    const slot = keySlot(key)
    const group = groups.get(slot)
    if (group === undefined) groups.set(slot, [index])
    else group.push(index)
  })
  return [...groups.values()]
}
