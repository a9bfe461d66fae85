import t from 'tap'
import { defaultIdentifier } from '../../lib/index.js'
import { boundIdentifier, MAX_IDENTIFIER_LENGTH } from '../../lib/throttle/identifier.js'

t.test('IPv4 is used as is', async (t) => {
  t.equal(defaultIdentifier({ ip: '203.0.113.7' }), '203.0.113.7')
})

t.test('IPv4-mapped IPv6 counts as its IPv4 address', async (t) => {
  t.equal(defaultIdentifier({ ip: '::ffff:203.0.113.7' }), '203.0.113.7')
  t.equal(defaultIdentifier({ ip: '::FFFF:10.0.0.1' }), '10.0.0.1')
  t.equal(defaultIdentifier({ ip: '0:0:0:0:0:ffff:cb00:7107' }), '203.0.113.7')
})

t.test('IPv6 is masked to its /64, whatever the notation', async (t) => {
  const same = ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2::5%eth0']
  for (const ip of same) t.equal(defaultIdentifier({ ip }), '2001:0db8:0001:0002::/64', ip)
  t.equal(defaultIdentifier({ ip: '2001:db8:1:3::1' }), '2001:0db8:0001:0003::/64', 'another /64 is another client')
  t.equal(defaultIdentifier({ ip: '::1' }), '0000:0000:0000:0000::/64')
})

t.test('a request without an address gets a defined identifier', async (t) => {
  t.equal(defaultIdentifier({}), 'unknown')
  t.equal(defaultIdentifier({ ip: '' }), 'unknown')
})

t.test('long identifiers are hashed, short ones kept', async (t) => {
  t.equal(boundIdentifier('user-1'), 'user-1')
  const long = 'x'.repeat(10_000)
  const bounded = boundIdentifier(long)
  t.ok(bounded.length <= MAX_IDENTIFIER_LENGTH)
  t.match(bounded, /^sha256:[0-9a-f]{64}$/)
  t.equal(boundIdentifier(long), bounded, 'stable')
  t.not(boundIdentifier(long + 'y'), bounded)
})
