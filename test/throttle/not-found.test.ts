import t from 'tap'
import { buildApp } from '../helpers/build-app.js'

t.test('setNotFoundHandler with throttle.hook limits unknown paths (scanners), per client', async (t) => {
  const { app, clock } = await buildApp(t, { global: { rate: '100/min' } }, (app) => {
    const scanner = app.throttle.create({ uid: 'not-found', rate: '3/min' })
    app.setNotFoundHandler({ preHandler: scanner.hook }, async (request, reply) => await reply.code(404).send({ error: 'Not Found', path: request.url }))
    app.get('/known', async () => 'ok')
  })
  const probes = ['/wp-admin', '/.env', '/phpmyadmin', '/.git/config']
  const statuses = []
  for (const url of probes) statuses.push((await app.inject(url)).statusCode)
  t.same(statuses, [404, 404, 404, 429], 'the fourth unknown path is throttled')
  const throttled = await app.inject('/backup.zip')
  t.equal(throttled.json().code, 'TRAFFIK_ERR_RATE_LIMITED')
  t.equal(throttled.headers['retry-after'], '60')
  const counted = await app.inject({ url: '/other', remoteAddress: '10.9.9.9' })
  t.equal(counted.statusCode, 404, 'another client has its own budget')
  t.equal(counted.headers['x-ratelimit-remaining'], '2')
  t.equal((await app.inject('/known')).statusCode, 200, 'known routes use their own limits')
  clock.advance(60_000)
  t.equal((await app.inject('/.env')).statusCode, 404, 'a new window lets the client probe again')
})
