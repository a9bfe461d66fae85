/**
 * Loaded before every documentation sample: a sample that starts a server listens on a free
 * loopback port instead of the one it names, and the process ends shortly after it is up.
 * Samples that finish on their own exit normally.
 */
import { Server } from 'node:net'

const listen = Server.prototype.listen
Server.prototype.listen = function patchedListen (this: Server, ...args: unknown[]) {
  const first = args[0]
  if (first !== null && typeof first === 'object') {
    args[0] = { ...first, port: 0, host: '127.0.0.1' }
  } else if (typeof first === 'number' || typeof first === 'string') {
    args[0] = 0
  }
  this.once('listening', () => {
    setTimeout(() => { process.exit(0) }, 1500).unref()
  })
  return (listen as (...a: unknown[]) => Server).apply(this, args)
} as typeof Server.prototype.listen
