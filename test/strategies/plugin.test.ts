/**
 * Every strategy through the plugin (Fastify inject, InMemoryBackend on a ManualClock): chosen per
 * route and through the plugin's `defaults`, with 200/429, legacy headers, and a client that waits
 * exactly the Retry-After it was given getting through.
 */
import t from 'tap'
import {
  FixedWindow, GCRA, LeakyBucket, LeakyBucketWithQueue, SlidingWindowCounter, SlidingWindowLog,
  TokenBucket, TokenBucketWithDebt
} from '../../lib/index.js'
import type { Strategy } from '../../types/strategy.js'
import { buildApp } from '../helpers/build-app.js'

const ok = async (): Promise<{ ok: boolean }> => ({ ok: true })

// Burst of 8 at '5/s' at one instant: how many pass, and the first Retry-After in seconds.
const CASES: Array<[string, () => Strategy, number, string]> = [
  ['FixedWindow', () => new FixedWindow(), 5, '1'],
  ['SlidingWindowCounter', () => new SlidingWindowCounter(), 5, '2'],
  ['SlidingWindowLog', () => new SlidingWindowLog(), 5, '1'],
  ['TokenBucket', () => new TokenBucket(), 5, '1'],
  ['TokenBucketWithDebt', () => new TokenBucketWithDebt({ maxDebt: 2 }), 7, '1'],
  ['LeakyBucket', () => new LeakyBucket(), 1, '1'],
  ['GCRA', () => new GCRA(), 1, '1'],
  ['LeakyBucketWithQueue({ maxDelayMs: 0 })', () => new LeakyBucketWithQueue({ maxDelayMs: 0 }), 1, '1']
]

for (const [label, make, admitted, retryAfter] of CASES) {
  t.test(`${label} on a route: 200 then 429 with headers; waiting Retry-After gets through`, async (t) => {
    const { app, clock } = await buildApp(t, {}, (app) => {
      app.get('/', { config: { rateLimit: { rate: '5/s', strategy: make() } } }, ok)
    })
    const responses = []
    for (let i = 0; i < 8; i++) responses.push(await app.inject('/'))
    const statuses = responses.map((r) => r.statusCode)
    t.same(statuses, [...Array(admitted).fill(200), ...Array(8 - admitted).fill(429)])
    const first = responses[0]!
    t.equal(first.headers['x-ratelimit-limit'], '5')
    t.match(first.headers['x-ratelimit-remaining'], /^[0-5]$/)
    t.notOk(first.headers['retry-after'], 'no Retry-After on a 200')
    const rejected = responses[admitted]!
    t.equal(rejected.headers['x-ratelimit-remaining'], '0')
    t.equal(rejected.headers['retry-after'], retryAfter)
    t.equal(rejected.json().code, 'TRAFFIK_ERR_RATE_LIMITED')
    clock.advance(Number(retryAfter) * 1000)
    t.equal((await app.inject('/')).statusCode, 200, 'allowed after waiting exactly Retry-After seconds')
  })
}

t.test('the strategy can come from the plugin defaults', async (t) => {
  const { app } = await buildApp(t, { defaults: { strategy: new GCRA() } }, (app) => {
    app.get('/gcra', { config: { rateLimit: { rate: '10/s' } } }, ok)
    app.get('/bucket', { config: { rateLimit: { rate: '10/s', strategy: new TokenBucket() } } }, ok)
  })
  const gcra = [await app.inject('/gcra'), await app.inject('/gcra')].map((r) => r.statusCode)
  t.same(gcra, [200, 429], 'defaults: GCRA spaces requests (one per 100 ms)')
  const bucket = []
  for (let i = 0; i < 3; i++) bucket.push((await app.inject('/bucket')).statusCode)
  t.same(bucket, [200, 200, 200], 'a route strategy overrides the default')
})

t.test('LeakyBucketWithQueue holds requests for their turn, then rejects beyond maxDelayMs', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { rate: '10/s', strategy: new LeakyBucketWithQueue({ maxDelayMs: 300 }) } } }, ok)
  })
  const started = Date.now()
  const finished: number[] = []
  const responses = await Promise.all(Array.from({ length: 5 }, async () => {
    const res = await app.inject('/')
    finished.push(Date.now() - started)
    return res
  }))
  const statuses = responses.map((r) => r.statusCode).sort()
  t.same(statuses, [200, 200, 200, 200, 429], 'delays 0, 100, 200, 300 ms are admitted; 400 ms is beyond maxDelayMs')
  const rejected = responses.find((r) => r.statusCode === 429)!
  t.equal(rejected.headers['retry-after'], '1', '100 ms until a slot frees, rounded up to 1 s')
  t.ok(Math.max(...finished) >= 280, `the last admitted request waited its turn (${Math.max(...finished)} ms)`)
})

t.test('LeakyBucketWithQueue: a client that disconnects while held gives its slot back', async (t) => {
  const { app } = await buildApp(t, {}, (app) => {
    app.get('/', { config: { rateLimit: { uid: 'queue', rate: '1/s', strategy: new LeakyBucketWithQueue({ maxDelayMs: 2000 }) } } }, ok)
  })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const throttle = app.throttle.get('queue')!
  const client = { ip: '127.0.0.1' }
  /** Polls the delay the next request would get until it equals `expected` (the server works asynchronously). */
  const delayBecomes = async (expected: number): Promise<number> => {
    let delay = -1
    for (let i = 0; i < 200 && delay !== expected; i++) {
      delay = (await throttle.check(client)).delayMs ?? 0
      if (delay !== expected) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return delay
  }
  t.equal((await fetch(address)).status, 200, 'the first request goes at once')
  t.equal(await delayBecomes(1000), 1000, 'the next one would wait 1000 ms')
  const aborter = new AbortController()
  const held = fetch(address, { signal: aborter.signal }).catch((error: Error) => error)
  t.equal(await delayBecomes(2000), 2000, 'while one is held, the next would wait 2000 ms')
  aborter.abort()
  t.type(await held, Error, 'the held client went away')
  t.equal(await delayBecomes(1000), 1000, 'its slot was given back: the next request waits 1000 ms again')
})
