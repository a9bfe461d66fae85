import t from 'tap'
import { parseRate, formatRate, UNLIMITED } from '../../lib/rate.js'

t.test('parses every documented format', async (t) => {
  const cases: Array<[unknown, number, number]> = [
    ['100/min', 100, 60_000],
    ['5/s', 5, 1000],
    ['10/30s', 10, 30_000],
    ['1000/hour', 1000, 3_600_000],
    ['500/day', 500, 86_400_000],
    ['200/500ms', 200, 500],
    ['0/s', 0, 1000],
    ['7 / 2 minutes', 7, 120_000],
    [{ limit: 3, windowMs: 250 }, 3, 250]
  ]
  for (const [input, limit, windowMs] of cases) {
    const rate = parseRate(input as never)
    t.same({ limit: rate.limit, windowMs: rate.windowMs, unlimited: rate.unlimited }, { limit, windowMs, unlimited: false }, String(JSON.stringify(input)))
  }
})

// docs/rates.md states this reading; a change to it must change the docs too.
t.test('units are case-insensitive, and M is minutes (there is no month unit)', async (t) => {
  t.same(parseRate('10/M'), parseRate('10/min'))
  t.same(parseRate('10/MS'), parseRate('10/ms'))
  t.same(parseRate('3/Hour'), parseRate('3/hour'))
  t.throws(() => parseRate('10/month'), { code: 'TRAFFIK_ERR_INVALID_RATE' })
})

t.test('unlimited forms', async (t) => {
  t.equal(parseRate(null), UNLIMITED)
  t.equal(parseRate(Infinity), UNLIMITED)
  t.equal(parseRate('unlimited'), UNLIMITED)
  t.equal(parseRate({ limit: Infinity, windowMs: 1000 }), UNLIMITED)
})

t.test('bad rates fail with a coded error naming the value', async (t) => {
  const bad: unknown[] = ['', '100', '100/', '/min', '-1/s', '1.5/s', '10/0s', '10/fortnight', 'abc/min', 5, true, [], { limit: 1 }, { limit: -1, windowMs: 1000 }, { limit: 1, windowMs: 0.5 }, { limit: 3, windowMs: Number.MAX_SAFE_INTEGER }, '1/1001000d']
  for (const input of bad) {
    t.throws(() => parseRate(input as never), { code: 'TRAFFIK_ERR_INVALID_RATE' }, String(JSON.stringify(input)))
  }
  t.throws(() => parseRate('10/fortnight'), /fortnight/)
})

t.test('formatRate renders what users write', async (t) => {
  t.equal(formatRate(parseRate('100/min')), '100/min')
  t.equal(formatRate(parseRate('10/30s')), '10/30s')
  t.equal(formatRate(parseRate('200/500ms')), '200/500ms')
  t.equal(formatRate(UNLIMITED), 'unlimited')
})
