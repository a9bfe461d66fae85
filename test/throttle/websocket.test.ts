import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { InMemoryBackend, ManualClock, limitMessages, traffik, type Throttle } from '../../lib/index.js'
import { ALIGNED_START } from '../helpers/build-app.js'

interface WsApp { app: FastifyInstance, url: string, clock: ManualClock }

async function wsApp (t: Test, routes: (app: FastifyInstance) => void): Promise<WsApp> {
  const clock = new ManualClock(ALIGNED_START)
  const app = Fastify()
  await app.register(websocket)
  await app.register(traffik, { backend: new InMemoryBackend({ clock }) })
  routes(app)
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  return { app, url: address.replace('http://', 'ws://'), clock }
}

/** Opens a client; resolves the socket once open, or the HTTP status that refused the upgrade. */
async function connect (url: string): Promise<{ socket?: WebSocket, status?: number, headers?: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once('open', () => { resolve({ socket }) })
    socket.once('unexpected-response', (_request, response) => {
      resolve({ status: response.statusCode, headers: response.headers })
      response.resume()
      socket.terminate()
    })
    socket.once('error', reject)
  })
}

/** Collects the next `n` messages (text) or the close event, whichever comes first. */
async function receive (socket: WebSocket, n: number): Promise<{ messages: string[], close?: { code: number, reason: string } }> {
  return await new Promise((resolve) => {
    const messages: string[] = []
    const onMessage = (data: Buffer): void => {
      messages.push(String(data))
      if (messages.length === n) done()
    }
    const onClose = (code: number, reason: Buffer): void => { done({ code, reason: String(reason) }) }
    const done = (close?: { code: number, reason: string }): void => {
      socket.off('message', onMessage)
      socket.off('close', onClose)
      resolve(close === undefined ? { messages } : { messages, close })
    }
    socket.on('message', onMessage)
    socket.on('close', onClose)
  })
}

t.test('connection limits run before the upgrade: a rejected client gets an HTTP 429 and no socket', async (t) => {
  const { url, clock } = await wsApp(t, (app) => {
    app.get('/ws', { websocket: true, config: { rateLimit: { rate: '2/min' } } }, (socket) => {
      socket.send('welcome')
    })
  })
  const opened: WebSocket[] = []
  for (let i = 0; i < 2; i++) {
    const { socket } = await connect(`${url}/ws`)
    t.ok(socket, `connection ${i + 1} upgraded`)
    opened.push(socket!)
  }
  const refused = await connect(`${url}/ws`)
  t.equal(refused.socket, undefined, 'no socket')
  t.equal(refused.status, 429)
  t.equal(refused.headers?.['retry-after'], '60')
  t.equal(refused.headers?.['x-ratelimit-remaining'], '0')
  for (const socket of opened) socket.close()
  clock.advance(60_000)
  const again = await connect(`${url}/ws`)
  t.ok(again.socket, 'a new window admits the client again')
  again.socket!.close()
})

t.test("per-message limits with the helper: 'frame' answers throttled messages and keeps the socket", async (t) => {
  let messages!: Throttle
  const { url, clock } = await wsApp(t, (app) => {
    messages = app.throttle.create({ uid: 'ws-messages', rate: '3/min' })
    app.get('/echo', { websocket: true }, (socket, request) => {
      limitMessages(socket, request, messages, { onMessage: (data) => { socket.send(`echo:${String(data)}`) } })
    })
  })
  const { socket } = await connect(`${url}/echo`)
  t.teardown(() => { socket!.close() })
  const incoming = receive(socket!, 5)
  for (let i = 1; i <= 5; i++) socket!.send(`m${i}`)
  const { messages: received } = await incoming
  t.same(received.slice(0, 3), ['echo:m1', 'echo:m2', 'echo:m3'], 'allowed messages arrive in order')
  for (const frame of received.slice(3)) {
    t.same(JSON.parse(frame), { type: 'rate_limited', retryAfter: 60, retryAfterMs: 60_000, limit: 3, remaining: 0, resetMs: 60_000 })
  }
  t.equal(socket!.readyState, WebSocket.OPEN, 'the socket stays open')
  clock.advance(60_000)
  const later = receive(socket!, 1)
  socket!.send('m6')
  t.same((await later).messages, ['echo:m6'], 'the budget is back after the window')
})

t.test("'close' closes the socket with the configured code (1013), and message costs can depend on the message", async (t) => {
  const { url } = await wsApp(t, (app) => {
    const bytes = app.throttle.create({ uid: 'ws-bytes', rate: '10/min' })
    app.get('/upload', { websocket: true }, (socket, request) => {
      limitMessages(socket, request, bytes, {
        onThrottled: 'close',
        closeCode: 1013,
        cost: (data: Buffer) => data.length,
        onMessage: (data) => { socket.send(`got ${String(data).length}`) }
      })
    })
  })
  const { socket } = await connect(`${url}/upload`)
  const incoming = receive(socket!, 3)
  socket!.send('12345')
  socket!.send('1234')
  socket!.send('12')
  socket!.send('never sent on')
  const { messages, close } = await incoming
  t.same(messages, ['got 5', 'got 4'], 'nine bytes fit; the third message would make eleven')
  t.same(close, { code: 1013, reason: 'rate limited' })
})

t.test('throttle.hit inside the handler works without the helper; connection and message budgets are separate', async (t) => {
  const { url } = await wsApp(t, (app) => {
    const perMessage = app.throttle.create({ uid: 'manual', rate: '1/min' })
    app.get('/manual', { websocket: true, config: { rateLimit: { rate: '5/min' } } }, (socket, request) => {
      socket.on('message', async () => {
        const decision = await perMessage.hit(request)
        socket.send(decision.allowed ? 'ok' : `slow down ${Math.ceil(decision.retryAfterMs / 1000)}`)
      })
    })
  })
  const { socket } = await connect(`${url}/manual`)
  t.teardown(() => { socket!.close() })
  const incoming = receive(socket!, 2)
  socket!.send('a')
  socket!.send('b')
  t.same((await incoming).messages, ['ok', 'slow down 60'])
})

t.test('bad helper options fail at once', async (t) => {
  const socket = { on () {}, send () {}, close () {} }
  const throttle = { hit: async () => ({}) } as unknown as Throttle
  t.throws(() => limitMessages(socket, {}, throttle, {} as never), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /onMessage/ })
  t.throws(() => limitMessages(socket, {}, throttle, { onMessage () {}, closeCode: 1000 as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /closeCode/ })
  t.throws(() => limitMessages(socket, {}, throttle, { onMessage () {}, onThrottled: 'drop' as never }), { code: 'TRAFFIK_ERR_INVALID_OPTION', message: /onThrottled/ })
})
