import { BlockList } from 'node:net'
import fc from 'fast-check'
import ipaddr from 'ipaddr.js'
import t from 'tap'
import { compileAddressList, parseAddress } from '../../lib/throttle/address-list.js'

// Reference model: ipaddr.js (what Fastify's proxy-addr uses), with IPv4-mapped IPv6 read as IPv4.
function referenceMatch (entries: readonly string[], value: string): boolean {
  if (entries.includes(value)) return true
  if (!ipaddr.isValid(value)) return false
  const address = ipaddr.process(value)
  for (const entry of entries) {
    const slash = entry.lastIndexOf('/')
    const base = slash === -1 ? entry : entry.slice(0, slash)
    if (!ipaddr.isValid(base)) continue
    let range = ipaddr.process(base)
    let bits = slash === -1 ? (range.kind() === 'ipv4' ? 32 : 128) : Number(entry.slice(slash + 1))
    if (slash !== -1 && range.kind() === 'ipv4' && ipaddr.parse(base).kind() === 'ipv6') {
      if (bits < 96) range = ipaddr.parse(base)
      else bits -= 96
    }
    if (range.kind() === 'ipv6' && address.kind() === 'ipv4') {
      // An IPv6 range holding the mapped block holds the IPv4 address.
      if ((address as ipaddr.IPv4).toIPv4MappedAddress().match(range as ipaddr.IPv6, bits)) return true
      continue
    }
    if (range.kind() !== address.kind()) continue
    if (range.kind() === 'ipv4') range = ipaddr.IPv4.parse(range.toString())
    if ((address as ipaddr.IPv4).match(range as ipaddr.IPv4, bits)) return true
  }
  return false
}

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'))
// Few distinct high groups so random addresses often fall in random ranges.
const v6 = fc.array(fc.constantFrom(0, 1, 0xdb8, 0x2001, 0xffff, 0xabcd), { minLength: 8, maxLength: 8 })
  .map((g) => ipaddr.IPv6.parse(g.map((x) => x.toString(16)).join(':')).toString())
const address = fc.oneof(v4, v6, v4.map((a) => `::ffff:${a}`))
const entry = fc.oneof(
  address,
  fc.tuple(v4, fc.nat(32)).map(([a, b]) => `${a}/${b}`),
  fc.tuple(v6, fc.nat(128)).map(([a, b]) => `${a}/${b}`),
  fc.tuple(v4, fc.integer({ min: 0, max: 128 })).map(([a, b]) => `::ffff:${a}/${b}`),
  fc.constantFrom('user-1', 'key:42', 'a/b')
)

t.test('matches exactly what the reference model matches, on random lists and addresses', async (t) => {
  fc.assert(fc.property(fc.array(entry, { maxLength: 8 }), fc.array(fc.oneof(address, fc.constant('user-1'), fc.constant('a/b')), { minLength: 1, maxLength: 10 }), (entries, values) => {
    const matcher = compileAddressList(entries, 'allow')
    for (const value of values) {
      if (matcher(value) !== referenceMatch(entries, value)) throw new Error(`${JSON.stringify(entries)} vs ${value}`)
    }
  }), { numRuns: 2000 })
  t.pass('2000 random lists agree with ipaddr.js')
})

t.test("agrees with Node's net.BlockList on plain IPv4 and IPv6 ranges", async (t) => {
  fc.assert(fc.property(fc.array(fc.oneof(
    fc.tuple(v4, fc.nat(32)).map(([a, b]) => ({ a, b, family: 'ipv4' as const })),
    fc.tuple(v6, fc.nat(128)).map(([a, b]) => ({ a, b, family: 'ipv6' as const }))
  ), { maxLength: 6 }), fc.array(fc.oneof(v4, v6), { minLength: 1, maxLength: 10 }), (ranges, values) => {
    const list = new BlockList()
    for (const r of ranges) list.addSubnet(r.a, r.b, r.family)
    const matcher = compileAddressList(ranges.map((r) => `${r.a}/${r.b}`), 'deny')
    for (const value of values) {
      if (matcher(value) !== list.check(value, value.includes(':') ? 'ipv6' : 'ipv4')) throw new Error(`${JSON.stringify(ranges)} vs ${value}`)
    }
  }), { numRuns: 1000 })
  t.pass('1000 random lists agree with net.BlockList')
})

t.test('fixed cases: spellings, mapped addresses, host bits, zones, exact values', async (t) => {
  const matcher = compileAddressList(['10.0.0.0/8', '2001:db8::/32', '::1', '192.168.1.7', '10.200.1.2/8', 'tenant/a', '0.0.0.0/0'.replace('0.0.0.0/0', '172.16.0.0/12')], 'allow')
  t.ok(matcher('10.1.2.3'))
  t.ok(matcher('::ffff:10.1.2.3'), 'an IPv4-mapped IPv6 address matches IPv4 ranges')
  t.ok(matcher('2001:DB8:ffff::1'), 'IPv6 in any case')
  t.ok(matcher('0:0:0:0:0:0:0:1'), 'any spelling of ::1')
  t.ok(matcher('fe80::1%eth0') === false)
  t.ok(matcher('192.168.1.7'))
  t.notOk(matcher('192.168.1.8'))
  t.ok(matcher('172.31.255.255'))
  t.notOk(matcher('172.32.0.0'))
  t.ok(matcher('tenant/a'), 'a value with a slash that is not a range is exact')
  t.notOk(matcher('tenant/b'))
  t.notOk(matcher(''))
  t.notOk(matcher('2001:db9::1'))
  t.ok(compileAddressList(['::/0'], 'x')('abcd::1'))
  t.ok(compileAddressList(['::/0'], 'x')('10.0.0.1'), 'a range holding the mapped block holds IPv4 clients')
  t.notOk(compileAddressList(['2001::/16'], 'x')('10.0.0.1'))
  t.ok(compileAddressList(['0.0.0.0/0'], 'x')('255.255.255.255'))
  t.ok(compileAddressList(['::ffff:10.0.0.0/104'], 'x')('10.9.9.9'), 'a mapped range is the IPv4 range')
  t.ok(compileAddressList(['fe80::/10'], 'x')('fe80::1%eth0'), 'a zone index is ignored')
  t.same(parseAddress('::ffff:1.2.3.4'), { v4: 0x01020304 })
  t.equal(parseAddress('not an ip'), undefined)
})

t.test('bad entries fail with a coded error naming the option', async (t) => {
  for (const bad of [['10.0.0.0/33'], ['::/129'], ['10.0.0.0/x'], ['10.0.0.0/'], [''], [42], ['::ffff:1.2.3.4/129']]) {
    t.throws(() => compileAddressList(bad, 'lists.deny'), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /lists\.deny\[\]/ }, JSON.stringify(bad))
  }
  t.throws(() => compileAddressList('10.0.0.0/8', 'lists.deny'), { code: 'TRAFFIK_ERR_INVALID_OPTION' })
})
