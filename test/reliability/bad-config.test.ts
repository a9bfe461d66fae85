/**
 * Bad configuration fails loudly: every option given a wrong type or value fails at registration
 * or construction with a coded error (TRAFFIK_ERR_*) whose message names the option and shows
 * the value. Nothing falls back to a default silently. One row per case; a row that does not
 * throw fails the test.
 */
import Fastify from 'fastify'
import t from 'tap'
import {
  CircuitBreaker, FixedWindow, GCRA, InMemoryBackend, LeakyBucket, LeakyBucketWithQueue, MemcachedBackend,
  RedisBackend, SlidingWindowCounter, SlidingWindowLog, Throttle, TokenBucket, TokenBucketWithDebt,
  bypassIf, failover, limitMessages, parseRate, retry, throttleIf, traffik
} from '../../lib/index.js'

/** Any value, as the untyped JavaScript caller could pass it. */
type Loose = any

interface BadCase {
  /** What is wrong, for the test name. */
  what: string
  /** The option the message must name. */
  option: string
  /** How the message must show the value. */
  shows: string
  /** Builds the thing; must throw (or reject) with a coded error. */
  run: () => unknown
}

const show = (value: unknown): string => typeof value === 'string' ? JSON.stringify(value) : String(value)

/** A throttle built with one bad option over otherwise valid ones. */
function throttleWith (option: string, value: unknown, shows = show(value)): BadCase {
  return {
    what: `throttle ${option} = ${shows}`,
    option,
    shows,
    run: () => new Throttle({ uid: 'bad', rate: '10/s', [option]: value } as Loose)
  }
}

function rateCase (value: unknown, shows = show(value)): BadCase {
  return { what: `rate ${shows}`, option: 'rate', shows, run: () => new Throttle({ uid: 'bad', rate: value as Loose }) }
}

/** The same bad throttle options, declared as a route's config.rateLimit: fails at `ready()`. */
function routeWith (option: string, value: unknown, shows = show(value)): BadCase {
  return {
    what: `route config.rateLimit.${option} = ${shows}`,
    option,
    shows,
    run: async () => {
      const app = Fastify()
      try {
        await app.register(traffik)
        app.get('/', { config: { rateLimit: { rate: '10/s', [option]: value } as Loose } }, async () => 'ok')
        await app.ready()
      } finally {
        await app.close().catch(() => {})
      }
    }
  }
}

function routeValue (value: unknown, shows: string): BadCase {
  return {
    what: `route config.rateLimit = ${shows}`,
    option: 'config.rateLimit',
    shows,
    run: async () => {
      const app = Fastify()
      try {
        await app.register(traffik)
        app.get('/', { config: { rateLimit: value as Loose } }, async () => 'ok')
        await app.ready()
      } finally {
        await app.close().catch(() => {})
      }
    }
  }
}

function pluginWith (options: unknown, option: string, shows: string): BadCase {
  return {
    what: `plugin ${option} = ${shows}`,
    option,
    shows,
    run: async () => {
      const app = Fastify()
      try {
        await app.register(traffik, options as Loose)
        await app.ready()
      } finally {
        await app.close().catch(() => {})
      }
    }
  }
}

function build (what: string, option: string, shows: string, run: () => unknown): BadCase {
  return { what, option, shows, run }
}

const memory = new InMemoryBackend()

const cases: BadCase[] = [
  // ---- rates: strings, objects, other types ----
  rateCase('abc'),
  rateCase('10'),
  rateCase('10/'),
  rateCase('/s'),
  rateCase('-1/s'),
  rateCase('1.5/s'),
  rateCase('10/0s'),
  rateCase('10/0.5ms'),
  rateCase('10/fortnight'),
  rateCase(''),
  rateCase(42),
  rateCase(-Infinity),
  rateCase(NaN),
  rateCase(true),
  rateCase([], 'array(0)'),
  rateCase({ limit: -1, windowMs: 1000 }, '{"limit":-1,"windowMs":1000}'),
  rateCase({ limit: 1.5, windowMs: 1000 }, '{"limit":1.5,"windowMs":1000}'),
  rateCase({ limit: 10, windowMs: 0 }, '{"limit":10,"windowMs":0}'),
  rateCase({ limit: 10, windowMs: 2.5 }, '{"limit":10,"windowMs":2.5}'),
  rateCase({ limit: 10 }, '{"limit":10}'),
  rateCase({ limit: '10', windowMs: 1000 }, '{"limit":"10","windowMs":1000}'),
  rateCase({}, '{}'),
  build('rate missing (no default)', 'rate', 'undefined', () => new Throttle({ uid: 'bad' } as Loose)),
  build("parseRate('5/ss')", 'rate', '"5/ss"', () => parseRate('5/ss')),
  routeWith('rate', '100/minute-ish'),
  routeWith('rate', { limit: 5, windowMs: -1 }, '{"limit":5,"windowMs":-1}'),

  // ---- costs ----
  throttleWith('shadow', 'on'),
  throttleWith('shadow', null),
  routeWith('shadow', 1),
  pluginWith({ defaults: { shadow: [] } }, 'shadow', 'array(0)'),
  pluginWith({ global: { rate: '1/s', shadow: { headers: 'yes' } } }, 'shadow.headers', '"yes"'),
  pluginWith({ defaults: { shadow: { header: true } } }, 'shadow.header', 'true'),
  throttleWith('cost', -1),
  throttleWith('cost', 1.5),
  throttleWith('cost', '1'),
  throttleWith('cost', NaN),
  throttleWith('cost', Infinity),
  throttleWith('cost', null),
  routeWith('cost', -2),

  // ---- strategies and their constructor options ----
  throttleWith('strategy', 'fixed-window'),
  throttleWith('strategy', {}, '{}'),
  throttleWith('strategy', FixedWindow, 'function FixedWindow'),
  throttleWith('strategy', null),
  routeWith('strategy', 'token-bucket'),
  build('TokenBucket burst 0', 'burst', '0', () => new TokenBucket({ burst: 0 })),
  build('TokenBucket burst 1.5', 'burst', '1.5', () => new TokenBucket({ burst: 1.5 })),
  build('TokenBucket burst "3"', 'burst', '"3"', () => new TokenBucket({ burst: '3' as Loose })),
  build('TokenBucket misspelt option', 'brust', '3', () => new TokenBucket({ brust: 3 } as Loose)),
  build('TokenBucket options a string', 'TokenBucket options', '"fast"', () => new TokenBucket('fast' as Loose)),
  build('TokenBucketWithDebt maxDebt -1', 'maxDebt', '-1', () => new TokenBucketWithDebt({ maxDebt: -1 })),
  build('TokenBucketWithDebt burst 0', 'burst', '0', () => new TokenBucketWithDebt({ burst: 0 })),
  build('LeakyBucket burst -1', 'burst', '-1', () => new LeakyBucket({ burst: -1 })),
  build('LeakyBucketWithQueue maxDelayMs -1', 'maxDelayMs', '-1', () => new LeakyBucketWithQueue({ maxDelayMs: -1 })),
  build('LeakyBucketWithQueue maxDelayMs NaN', 'maxDelayMs', 'NaN', () => new LeakyBucketWithQueue({ maxDelayMs: NaN })),
  build('GCRA burst 0', 'burst', '0', () => new GCRA({ burst: 0 })),
  build('GCRA burst Infinity', 'burst', 'Infinity', () => new GCRA({ burst: Infinity })),
  build('FixedWindow with an option', 'limit', '5', () => new FixedWindow({ limit: 5 } as Loose)),
  build('SlidingWindowCounter with an option', 'precision', '2', () => new SlidingWindowCounter({ precision: 2 } as Loose)),
  build('SlidingWindowLog with an option', 'size', '100', () => new SlidingWindowLog({ size: 100 } as Loose)),

  // ---- identifier, onThrottled, uid, unknown keys ----
  throttleWith('identifier', 'ip'),
  throttleWith('identifier', null),
  throttleWith('onThrottled', 'reply 429'),
  build('uid empty', 'uid', '""', () => new Throttle({ uid: '', rate: '1/s' })),
  build('uid 600 characters', 'uid', '"aaaa', () => new Throttle({ uid: 'a'.repeat(600), rate: '1/s' })),
  build('uid a number', 'uid', '7', () => new Throttle({ uid: 7 as Loose, rate: '1/s' })),
  build('unknown throttle option "limit"', 'throttle.limit', '5', () => new Throttle({ uid: 'x', rate: '1/s', limit: 5 } as Loose)),
  routeWith('window', 1000, '1000'),

  // ---- onError ----
  throttleWith('onError', 'ignore'),
  throttleWith('onError', 'ALLOW'),
  throttleWith('onError', 5),
  throttleWith('onError', null),
  throttleWith('onError', [], 'array(0)'),
  build("onError ['allow', 'throttle'] (a policy before the end)", 'onError[0]', '"allow"', () => new Throttle({ uid: 'x', rate: '1/s', onError: ['allow', 'throttle'] as Loose })),
  build('onError [retry, 42]', 'onError[1]', '42', () => new Throttle({ uid: 'x', rate: '1/s', onError: [retry({ retryOn: () => true }), 42] as Loose })),
  routeWith('onError', 'fail-open'),

  // ---- headers, incl. custom maps ----
  throttleWith('headers', 'draft-9'),
  throttleWith('headers', 'LEGACY'),
  throttleWith('headers', true),
  throttleWith('headers', null),
  throttleWith('headers', ['legacy'], 'array(1)'),
  throttleWith('headers', {}, '{}'),
  throttleWith('headers', { 'bad name': 'limit' }, '"bad name"'),
  throttleWith('headers', { 'x-limit': 'limitt' }, '"limitt"'),
  throttleWith('headers', { 'x-limit': { value: 'limit', when: 'sometimes' } }, '"sometimes"'),
  throttleWith('headers', { 'x-limit': { value: 'limit', static: '5' } }, '{"value":"limit","static":"5"}'),
  throttleWith('headers', { 'x-note': { static: 'line\nbreak' } }, '"line\\nbreak"'),
  throttleWith('headers', { 'x-a': 'limit', 'X-A': 'remaining' }, '"X-A"'),
  routeWith('headers', 'ietf'),

  // ---- rules ----
  throttleWith('rules', 'GET only'),
  throttleWith('rules', [{ methods: 'GET' }], 'array(1)'),
  build('throttleIf({})', 'throttleIf', '{}', () => throttleIf({} as Loose)),
  build('throttleIf with an unknown key', 'throttleIf.method', '"GET"', () => throttleIf({ method: 'GET' } as Loose)),
  build('bypassIf path without a leading slash', 'bypassIf.path', '"api/*"', () => bypassIf({ path: 'api/*' })),
  build('bypassIf path []', 'bypassIf.path', 'array(0)', () => bypassIf({ path: [] })),
  build('throttleIf methods []', 'throttleIf.methods', 'array(0)', () => throttleIf({ methods: [] })),
  build('throttleIf methods with a space', 'throttleIf.methods', '"GE T"', () => throttleIf({ methods: 'GE T' })),
  build('throttleIf when not a function', 'throttleIf.when', 'true', () => throttleIf({ when: true as Loose })),

  // ---- backend / dynamicBackend ----
  throttleWith('backend', {}, '{}'),
  throttleWith('backend', 'redis://127.0.0.1'),
  throttleWith('dynamicBackend', 'yes'),
  build('backend + dynamicBackend', 'dynamicBackend', '"namespace":"traffik"', () => new Throttle({ uid: 'x', rate: '1/s', backend: memory, dynamicBackend: true })),
  routeWith('dynamicBackend', 1),

  // ---- route config.rateLimit values ----
  routeValue(true, 'true'),
  routeValue('10/s', '"10/s"'),
  routeValue(5, '5'),
  routeValue(null, 'null'),
  routeValue([], '[]'),
  routeValue([{ rate: '1/s' }, null], 'array(2)'),
  routeValue([[{ rate: '1/s' }]], 'array(1)'),

  // ---- plugin options ----
  pluginWith({ hook: 'onSend' }, 'hook', '"onSend"'),
  pluginWith({ hook: 'prehandler' }, 'hook', '"prehandler"'),
  pluginWith({ backend: {} }, 'backend', '{}'),
  pluginWith({ backend: 'memory' }, 'backend', '"memory"'),
  pluginWith({ backends: [{}] }, 'backends', 'array(1)'),
  pluginWith({ backends: memory }, 'backends', '"namespace":"traffik"'),
  pluginWith({ resolveBackend: 'tenant' }, 'resolveBackend', '"tenant"'),
  pluginWith({ defaults: [] }, 'defaults', 'array(0)'),
  pluginWith({ defaults: 'strict' }, 'defaults', '"strict"'),
  pluginWith({ defaults: { uid: 'all' } }, 'defaults.uid', '"all"'),
  pluginWith({ defaults: { rate: 'fast' } }, 'rate', '"fast"'),
  pluginWith({ defaults: { limit: 5 } }, 'defaults.limit', '5'),
  pluginWith({ defaults: { onError: 'ignore' } }, 'onError', '"ignore"'),
  pluginWith({ global: 'everything' }, 'global[0]', '"everything"'),
  pluginWith({ global: { rate: '5/fortnight' } }, 'rate', '"5/fortnight"'),
  pluginWith({ global: [{ rate: '5/s' }, { rate: '5/s', cost: -1 }] }, 'cost', '-1'),
  pluginWith({ onDecision: 'log' }, 'onDecision', '"log"'),
  pluginWith({ max: 100 }, 'max', '100'),
  pluginWith({ timeWindow: 1000 }, 'timeWindow', '1000'),

  // ---- backend options: every backend ----
  build('InMemory maxKeys 0', 'maxKeys', '0', () => new InMemoryBackend({ maxKeys: 0 })),
  build('InMemory maxKeys -1', 'maxKeys', '-1', () => new InMemoryBackend({ maxKeys: -1 })),
  build('InMemory maxKeys 1.5', 'maxKeys', '1.5', () => new InMemoryBackend({ maxKeys: 1.5 })),
  build('InMemory maxKeys "100"', 'maxKeys', '"100"', () => new InMemoryBackend({ maxKeys: '100' as Loose })),
  build('InMemory maxKeys Infinity', 'maxKeys', 'Infinity', () => new InMemoryBackend({ maxKeys: Infinity })),
  build('InMemory maxKeys NaN', 'maxKeys', 'NaN', () => new InMemoryBackend({ maxKeys: NaN })),
  build('InMemory protectLimited "yes"', 'protectLimited', '"yes"', () => new InMemoryBackend({ protectLimited: 'yes' as Loose })),
  build('InMemory sweepIntervalMs 0', 'sweepIntervalMs', '0', () => new InMemoryBackend({ sweepIntervalMs: 0 })),
  build('InMemory clock {}', 'clock', '{}', () => new InMemoryBackend({ clock: {} as Loose })),
  build('InMemory namespace ""', 'namespace', '""', () => new InMemoryBackend({ namespace: '' })),
  build('InMemory namespace with a space', 'namespace', '"my app"', () => new InMemoryBackend({ namespace: 'my app' })),
  build('InMemory namespace 65 characters', 'namespace', '"nnnn', () => new InMemoryBackend({ namespace: 'n'.repeat(65) })),
  build('InMemory namespace 5', 'namespace', '5', () => new InMemoryBackend({ namespace: 5 as Loose })),
  build('InMemory persistent "no"', 'persistent', '"no"', () => new InMemoryBackend({ persistent: 'no' as Loose })),
  build('InMemory timeoutMs -1', 'timeoutMs', '-1', () => new InMemoryBackend({ timeoutMs: -1 })),
  build('InMemory misspelt maxKeys', 'maxkeys', '10', () => new InMemoryBackend({ maxkeys: 10 } as Loose)),
  build('Redis misspelt timeoutMs', 'timeout', '100', () => new RedisBackend('redis://127.0.0.1:6379', { timeout: 100 } as Loose)),
  build('Memcached misspelt timeoutMs', 'timeout', '100', () => new MemcachedBackend('127.0.0.1:11211', { timeout: 100 } as Loose)),
  build('InMemory options a string', 'backend options', '"fast"', () => new InMemoryBackend('fast' as Loose)),
  build('Redis timeoutMs -1', 'timeoutMs', '-1', () => new RedisBackend('redis://127.0.0.1:6379', { timeoutMs: -1 })),
  build('Redis timeoutMs "250"', 'timeoutMs', '"250"', () => new RedisBackend('redis://127.0.0.1:6379', { timeoutMs: '250' as Loose })),
  build('Redis timeoutMs NaN', 'timeoutMs', 'NaN', () => new RedisBackend('redis://127.0.0.1:6379', { timeoutMs: NaN })),
  build('Redis timeoutMs Infinity', 'timeoutMs', 'Infinity', () => new RedisBackend('redis://127.0.0.1:6379', { timeoutMs: Infinity })),
  build('Redis namespace ""', 'namespace', '""', () => new RedisBackend('redis://127.0.0.1:6379', { namespace: '' })),
  build('Redis persistent 1', 'persistent', '1', () => new RedisBackend('redis://127.0.0.1:6379', { persistent: 1 as Loose })),
  build('Redis connectTimeoutMs 0', 'connectTimeoutMs', '0', () => new RedisBackend('redis://127.0.0.1:6379', { connectTimeoutMs: 0 })),
  build('Redis clientOptions "x"', 'clientOptions', '"x"', () => new RedisBackend('redis://127.0.0.1:6379', { clientOptions: 'x' as Loose })),
  build('Redis closeClient "yes"', 'closeClient', '"yes"', () => new RedisBackend('redis://127.0.0.1:6379', { closeClient: 'yes' as Loose })),
  build('Redis redlock []', 'redlock', 'array(0)', () => new RedisBackend('redis://127.0.0.1:6379', { redlock: [] })),
  build('Redis scanCount 0', 'scanCount', '0', () => new RedisBackend('redis://127.0.0.1:6379', { scanCount: 0 })),
  build('Redis connection a number', 'connection', '6379', () => new RedisBackend(6379 as Loose)),
  build('Redis connection ""', 'connection', '""', () => new RedisBackend('')),
  build('Redis connection an http URL', 'connection', '"http://127.0.0.1:6379"', () => new RedisBackend('http://127.0.0.1:6379')),
  build('Memcached servers ""', 'servers', '""', () => new MemcachedBackend('')),
  build('Memcached servers with a space', 'servers', '"127.0.0.1:11211, bad host"', () => new MemcachedBackend('127.0.0.1:11211, bad host')),
  build('Memcached servers a number', 'servers', '11211', () => new MemcachedBackend(11211 as Loose)),
  build('Memcached timeoutMs -5', 'timeoutMs', '-5', () => new MemcachedBackend('127.0.0.1:11211', { timeoutMs: -5 })),
  build('Memcached namespace non-ASCII', 'namespace', '"café"', () => new MemcachedBackend('127.0.0.1:11211', { namespace: 'café' })),
  build('Memcached clientOptions null', 'clientOptions', 'null', () => new MemcachedBackend('127.0.0.1:11211', { clientOptions: null as Loose })),
  build('Memcached generationRefreshMs -1', 'generationRefreshMs', '-1', () => new MemcachedBackend('127.0.0.1:11211', { generationRefreshMs: -1 })),
  build('Memcached persistent "true"', 'persistent', '"true"', () => new MemcachedBackend('127.0.0.1:11211', { persistent: 'true' as Loose })),

  // ---- error handlers: retry, failover, CircuitBreaker ----
  build('retry without retryOn', 'retry.retryOn', 'undefined', () => retry({} as Loose)),
  build('retry retryOn "ECONNREFUSED"', 'retry.retryOn', '"ECONNREFUSED"', () => retry({ retryOn: 'ECONNREFUSED' as Loose })),
  build('retry retryOn []', 'retry.retryOn', 'array(0)', () => retry({ retryOn: [] })),
  build('retry retries 0', 'retry.retries', '0', () => retry({ retryOn: () => true, retries: 0 })),
  build('retry retries 11', 'retry.retries', '11', () => retry({ retryOn: () => true, retries: 11 })),
  build('retry delayMs -1', 'retry.delayMs', '-1', () => retry({ retryOn: () => true, delayMs: -1 })),
  build('retry delayMs "50"', 'retry.delayMs', '"50"', () => retry({ retryOn: () => true, delayMs: '50' as Loose })),
  build('retry backoff "linear"', 'retry.backoff', '"linear"', () => retry({ retryOn: () => true, backoff: 'linear' as Loose })),
  build('retry maxDelayMs NaN', 'retry.maxDelayMs', 'NaN', () => retry({ retryOn: () => true, maxDelayMs: NaN })),
  build('retry jitter "full"', 'retry.jitter', '"full"', () => retry({ retryOn: () => true, jitter: 'full' as Loose })),
  build('retry unknown option', 'retry.attempts', '3', () => retry({ retryOn: () => true, attempts: 3 } as Loose)),
  build('retry options null', 'retry options', 'null', () => retry(null as Loose)),
  build('failover without backend', 'failover.backend', 'undefined', () => failover({} as Loose)),
  build('failover backend {}', 'failover.backend', '{}', () => failover({ backend: {} as Loose })),
  build('failover breaker {}', 'failover.breaker', '{}', () => failover({ backend: memory, breaker: {} as Loose })),
  build('failover on []', 'failover.on', 'array(0)', () => failover({ backend: memory, on: [] })),
  build('failover unknown option', 'failover.fallback', '"namespace"', () => failover({ backend: memory, fallback: memory } as Loose)),
  build('CircuitBreaker failureThreshold 0', 'failureThreshold', '0', () => new CircuitBreaker({ failureThreshold: 0 })),
  build('CircuitBreaker failureThreshold 2.5', 'failureThreshold', '2.5', () => new CircuitBreaker({ failureThreshold: 2.5 })),
  build('CircuitBreaker recoveryTimeMs -1', 'recoveryTimeMs', '-1', () => new CircuitBreaker({ recoveryTimeMs: -1 })),
  build('CircuitBreaker recoveryTimeMs "30s"', 'recoveryTimeMs', '"30s"', () => new CircuitBreaker({ recoveryTimeMs: '30s' as Loose })),
  build('CircuitBreaker halfOpenProbes 0', 'halfOpenProbes', '0', () => new CircuitBreaker({ halfOpenProbes: 0 })),
  build('CircuitBreaker onStateChange "log"', 'onStateChange', '"log"', () => new CircuitBreaker({ onStateChange: 'log' as Loose })),
  build('CircuitBreaker clock {}', 'clock', '{}', () => new CircuitBreaker({ clock: {} as Loose })),
  build('CircuitBreaker options 5', 'CircuitBreaker options', '5', () => new CircuitBreaker(5 as Loose)),
  build('CircuitBreaker unknown option', 'threshold', '3', () => new CircuitBreaker({ threshold: 3 } as Loose)),

  // ---- runtime updates validate like construction ----
  build('updateRate("fast")', 'rate', '"fast"', () => new Throttle({ uid: 'x', rate: '1/s' }).updateRate('fast')),
  build('updateCost(-1)', 'cost', '-1', () => new Throttle({ uid: 'x', rate: '1/s' }).updateCost(-1)),
  build('updateStrategy("gcra")', 'strategy', '"gcra"', () => new Throttle({ uid: 'x', rate: '1/s' }).updateStrategy('gcra' as Loose)),

  // ---- WebSocket message limits ----
  build('limitMessages onThrottled "drop"', 'limitMessages.onThrottled', '"drop"', () => limitMessages({} as Loose, {}, new Throttle({ uid: 'x', rate: '1/s' }), { onMessage: () => {}, onThrottled: 'drop' as Loose }))
]

async function outcome (run: () => unknown): Promise<unknown> {
  try {
    await run()
  } catch (error) {
    return error
  }
  return undefined
}

for (const c of cases) {
  t.test(c.what, async (t) => {
    const error = await outcome(c.run) as (Error & { code?: string }) | undefined
    if (error === undefined) {
      t.fail(`no error: ${c.what} was accepted`)
      return
    }
    t.match(error.code, /^TRAFFIK_ERR_[A-Z_]+$/, `coded error (${error.code}): ${error.message}`)
    t.ok(error.message.includes(`'${c.option}'`) || error.message.includes(c.option), `names the option ${c.option}: ${error.message}`)
    t.ok(error.message.includes(c.shows), `shows the value ${c.shows}: ${error.message}`)
  })
}
