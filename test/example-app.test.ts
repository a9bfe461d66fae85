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
  for (let i = 0; i < 6; i++) logins.push((await app.inject({ method: 'POST', url: '/login' })).statusCode)
  t.same(logins, [200, 200, 200, 200, 200, 429])

  const full = await app.inject({ url: '/reports?full=true', headers: { 'x-api-key': 'abc' } })
  t.equal(full.headers['x-ratelimit-remaining'], '15', 'a full report costs 5 of the burst of 20')
  const quota = await app.inject('/quota')
  t.equal(quota.json().remaining, 20, 'quota is per identifier: this caller has no API key, so a fresh bucket')
  const internal = await app.inject({ url: '/reports', headers: { 'x-internal-token': 'let-me-in' } })
  t.notOk(internal.headers['x-ratelimit-limit'], 'internal callers are exempt')
  for (let i = 0; i < 3; i++) t.equal((await app.inject('/health')).statusCode, 200)
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
