import t from 'tap'
import { build } from '../example-app/app.js'

t.test('the example app limits as its comments say', async (t) => {
  const app = await build()
  t.teardown(async () => { await app.close() })

  t.equal((await app.inject('/')).headers['x-ratelimit-limit'], '100', 'global limit')
  const search = []
  for (let i = 0; i < 11; i++) search.push((await app.inject('/search?q=x')).statusCode)
  t.equal(search.filter((s) => s === 200).length, 10)
  t.equal(search[10], 429)

  const logins = []
  const trial = []
  for (let i = 0; i < 6; i++) {
    const response = await app.inject({ method: 'POST', url: '/login' })
    logins.push(response.statusCode)
    if (response.statusCode === 200) trial.push(response.json().trialWouldReject)
  }
  t.same(logins, [200, 200, 200, 200, 200, 429])
  t.same(trial, [false, false, false, true, true], 'the shadow trial limit would have rejected the 4th and 5th, and rejected none')
  const scrape = (await app.inject('/metrics')).body
  t.match(scrape, /traffik_decisions_total\{[^}]*traffik_throttle_uid="login-trial"[^}]*traffik_outcome="shadow_throttled"[^}]*\} 2/, '/metrics counts the shadow rejections')
  t.match(scrape, /traffik_decisions_total\{[^}]*traffik_throttle_uid="GET:\/search"[^}]*traffik_outcome="throttled"[^}]*\} 1/, 'and the real ones')

  const signIn = async (password: string): Promise<number> => (await app.inject({ method: 'POST', url: '/sign-in', payload: { password } })).statusCode
  const signIns = []
  for (let i = 0; i < 3; i++) signIns.push(await signIn('open sesame'))
  for (let i = 0; i < 5; i++) signIns.push(await signIn('guess'))
  signIns.push(await signIn('guess'), await signIn('open sesame'))
  t.same(signIns, [200, 200, 200, 401, 401, 401, 401, 401, 429, 429], 'successes never count; 5 failures lock the client out at the 6th')

  const full = await app.inject({ url: '/reports?full=true', headers: { 'x-api-key': 'abc' } })
  t.equal(full.headers['x-ratelimit-remaining'], '15', 'a full report costs 5 of the burst of 20')
  const quota = await app.inject('/quota')
  t.equal(quota.json().remaining, 20, 'quota is per identifier: this caller has no API key, so a fresh bucket')
  const internal = await app.inject({ url: '/reports', headers: { 'x-internal-token': 'let-me-in' } })
  t.notOk(internal.headers['x-ratelimit-limit'], 'internal callers are exempt')
  for (let i = 0; i < 3; i++) t.equal((await app.inject('/health')).statusCode, 200)
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200, 'ready: every backend answers')
  t.equal(ready.json().ok, true)
  t.ok(ready.json().backends.length >= 1 && ready.json().backends.every((b: { state: string }) => b.state === 'up'))

  const exports = await Promise.all([1, 2, 3].map(async () => (await app.inject({ method: 'POST', url: '/exports' })).statusCode))
  t.same(exports.sort(), [200, 200, 429], 'two exports in flight at once, the third refused')
  t.equal((await app.inject({ method: 'POST', url: '/exports' })).statusCode, 200, 'their slots came back when they ended')
  const monthly = await app.throttle.get('exports-monthly')!.stat({ ip: '127.0.0.1', headers: {} } as never)
  t.equal(monthly.remaining, 497, 'the monthly quota counted the three exports admitted (the refused one charged nothing)')
})

t.test('the example server starts and stops', async (t) => {
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, ['--import', 'tsx', 'example-app/server.ts'], {
    env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const listening = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no listen line: ${output}`)) }, 20_000)
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const match = /Server listening at (http:\/\/[^"\s]+)/.exec(output)
      if (match !== null) { clearTimeout(timer); resolve(match[1]!) }
    })
  })
  const res = await fetch(`${listening}/health`)
  t.equal(res.status, 200)
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'graceful close on SIGTERM')
})

t.test('multi-tenant: each tier limits at its own rate in its own backend', async (t) => {
  const { sharedRedisUrl, uniqueNamespace } = await import('../scripts/support/services.js')
  const { TIER_RATES } = await import('../example-app/multi-tenant.js')
  for (const withRedis of [true, false]) {
    const app = await build({ tenants: { redisUrl: withRedis ? await sharedRedisUrl() : null } })
    t.teardown(async () => { await app.close() })
    const tenant = uniqueNamespace('tenant') // Redis counters persist: a fresh tenant per run
    const call = async (tier: string | undefined, id = tenant): Promise<{ status: number, body: { tier: string, backend: string | null }, limit: string | undefined }> => {
      const headers: Record<string, string> = { 'x-tenant-id': id }
      if (tier !== undefined) headers['x-tenant-tier'] = tier
      const res = await app.inject({ url: '/tenant/data', headers })
      return { status: res.statusCode, body: res.json(), limit: res.headers['x-ratelimit-limit'] as string | undefined }
    }
    const label = withRedis ? 'with Redis' : 'in memory only'
    const expectedBackend = { enterprise: withRedis ? 'RedisBackend' : 'InMemoryBackend', premium: withRedis ? 'RedisBackend' : 'InMemoryBackend', free: 'InMemoryBackend' }
    for (const tier of ['enterprise', 'premium', 'free'] as const) {
      const first = await call(tier)
      t.equal(first.status, 200, `${label}: ${tier} allowed`)
      t.same(first.body, { tier, backend: expectedBackend[tier] }, `${label}: ${tier} counts in its tier's backend`)
      t.equal(first.limit, TIER_RATES[tier].split('/')[0], `${label}: ${tier} has its tier's rate`)
    }
    t.equal((await call(undefined)).body.tier, 'free', `${label}: no tier header means free`)
    // free: 10/min for this tenant, and the first two calls above already counted.
    const statuses: number[] = []
    for (let i = 0; i < 9; i++) statuses.push((await call('free')).status)
    t.same(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 429], `${label}: the free tier stops at 10`)
    t.equal((await call('premium')).status, 200, `${label}: the same tenant on another tier has its own budget`)
    t.equal((await call('free', `${tenant}-other`)).status, 200, `${label}: another tenant on the free tier has its own budget`)
  }
})

t.test('the example chat limits WebSocket messages per client', async (t) => {
  const app = await build()
  t.teardown(async () => { await app.close() })
  await app.ready()
  const socket = await app.injectWS('/chat')
  const received: string[] = []
  const six = new Promise<void>((resolve) => {
    socket.on('message', (data: Buffer) => {
      received.push(data.toString())
      if (received.length === 6) resolve()
    })
  })
  for (let i = 1; i <= 6; i++) socket.send(`m${i}`)
  await six
  socket.terminate()
  t.same(received.slice(0, 5), ['echo: m1', 'echo: m2', 'echo: m3', 'echo: m4', 'echo: m5'])
  t.match(JSON.parse(received[5]!), { type: 'rate_limited', limit: 5, remaining: 0 })
})
