/**
 * Real servers for tests: redis-server (single node and a 3-node cluster), memcached and
 * PostgreSQL, each started on a free loopback port in a temporary directory and stopped afterwards.
 * Missing binaries are installed with apt-get when running as root (CI); otherwise the error says
 * what to install. No mocks: tests talk to the real thing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pauseServer, resumeServer, type Probe } from './server-pause.js'

export interface RunningServer {
  readonly host: string
  readonly port: number
  readonly process: ChildProcess
  /** Sends SIGTERM and waits for the process to exit; removes its temporary directory. */
  stop(): Promise<void>
}

/** A single-process server (redis-server, memcached) that tests can hang and continue. */
export interface PausableServer extends RunningServer {
  /** Sends SIGSTOP; resolves once every thread has stopped and a fresh request goes unanswered. */
  pause(): Promise<void>
  /** Sends SIGCONT; resolves once the server answers again. */
  resume(): Promise<void>
}

const LOOPBACK = '127.0.0.1'

/** A TCP port nothing listens on right now. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, LOOPBACK, () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

function hasCommand (command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

let aptUpdated = false

/** Makes sure `command` exists, installing `aptPackage` when running as root. */
export function ensureCommand (command: string, aptPackage: string): void {
  if (hasCommand(command)) return
  if (process.getuid?.() !== 0) {
    throw new Error(`'${command}' is not installed; install the Debian package '${aptPackage}' (apt-get install ${aptPackage})`)
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (!aptUpdated) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env })
    aptUpdated = true
  }
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', aptPackage], { stdio: 'ignore', env })
  if (!hasCommand(command)) throw new Error(`installing '${aptPackage}' did not provide '${command}'`)
}

/** Resolves once `probe` answers with text matching `expect`, or rejects after `timeoutMs`. */
async function waitForTcp (port: number, probe: string, expect: RegExp, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError = ''
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before it answered`)
    try {
      const reply = await tcpAsk(port, probe)
      if (expect.test(reply)) return
      lastError = `unexpected reply ${JSON.stringify(reply.slice(0, 80))}`
    } catch (error) {
      lastError = (error as Error).message
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`server on port ${port} did not answer within ${timeoutMs} ms: ${lastError}`)
}

/** Sends one line to a server and returns what it answered first. */
export async function tcpAsk (port: number, line: string, host = LOOPBACK): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = createConnection({ host, port })
    let data = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('no answer')) }, 1000)
    socket.on('connect', () => socket.write(line))
    socket.on('data', (chunk) => {
      data += chunk.toString()
      if (data.includes('\r\n')) {
        clearTimeout(timer)
        socket.destroy()
        resolve(data)
      }
    })
    socket.on('error', (error) => { clearTimeout(timer); reject(error) })
  })
}

function startProcess (command: string, args: string[], dir: string): ChildProcess {
  const child = spawn(command, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], detached: false })
  child.stderr?.resume()
  return child
}

function stopper (child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // A SIGSTOPped server ignores SIGTERM until continued.
      child.kill('SIGCONT')
      const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
}

const REDIS_PROBE: Probe = { line: 'PING\r\n', expect: /PONG/ }
const MEMCACHED_PROBE: Probe = { line: 'version\r\n', expect: /VERSION/ }

function pausable (child: ChildProcess, port: number, dir: string, probe: Probe): PausableServer {
  return {
    host: LOOPBACK,
    port,
    process: child,
    stop: stopper(child, dir),
    pause: async () => { await pauseServer(child, LOOPBACK, port, probe) },
    resume: async () => { await resumeServer(child, LOOPBACK, port, probe) }
  }
}

/** Starts a redis-server on a free loopback port (no persistence). Extra `args` are passed through. */
export async function startRedis (options: { port?: number, args?: string[] } = {}): Promise<PausableServer> {
  ensureCommand('redis-server', 'redis-server')
  const port = options.port ?? await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'traffik-redis-'))
  const child = startProcess('redis-server', [
    '--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no', '--dir', dir,
    '--protected-mode', 'no', ...(options.args ?? [])
  ], dir)
  await waitForTcp(port, REDIS_PROBE.line, REDIS_PROBE.expect, 10_000, child)
  return pausable(child, port, dir, REDIS_PROBE)
}

/** Starts a memcached on a free loopback port. */
export async function startMemcached (options: { port?: number, memoryMb?: number } = {}): Promise<PausableServer> {
  ensureCommand('memcached', 'memcached')
  const port = options.port ?? await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'traffik-memcached-'))
  const args = ['-p', String(port), '-l', LOOPBACK, '-U', '0', '-m', String(options.memoryMb ?? 64)]
  if (process.getuid?.() === 0) args.push('-u', 'root')
  const child = startProcess('memcached', args, dir)
  await waitForTcp(port, MEMCACHED_PROBE.line, MEMCACHED_PROBE.expect, 10_000, child)
  return pausable(child, port, dir, MEMCACHED_PROBE)
}

export interface RunningCluster {
  readonly nodes: RunningServer[]
  /** `[{ host, port }]` of every master, for ioredis' Cluster constructor. */
  readonly startupNodes: Array<{ host: string, port: number }>
  stop(): Promise<void>
}

/** Starts a 3-master Redis Cluster on loopback (no replicas) and waits until it is healthy. */
export async function startRedisCluster (size = 3): Promise<RunningCluster> {
  ensureCommand('redis-cli', 'redis-tools')
  const nodes: RunningServer[] = []
  for (let i = 0; i < size; i++) {
    nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'] }))
  }
  const addresses = nodes.map((n) => `${n.host}:${n.port}`)
  execFileSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' })
  const deadline = Date.now() + 20_000
  for (;;) {
    const info = execFileSync('redis-cli', ['-h', LOOPBACK, '-p', String(nodes[0]!.port), 'cluster', 'info']).toString()
    if (info.includes('cluster_state:ok')) break
    if (Date.now() > deadline) throw new Error('the Redis cluster did not reach cluster_state:ok')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    nodes,
    startupNodes: nodes.map((n) => ({ host: n.host, port: n.port })),
    stop: async () => { await Promise.all(nodes.map(async (n) => { await n.stop() })) }
  }
}

// ---- shared servers for a whole test run ----
// `npm test` starts one Redis and one memcached and passes them in REDIS_URL / MEMCACHED_SERVERS.
// A test file run on its own starts private ones, stopped when its process exits.

const privateServers: RunningServer[] = []
let exitHookInstalled = false

function stopOnExit (server: RunningServer): void {
  privateServers.push(server)
  // A server that lives until exit must not keep the test process alive (its stderr pipe would).
  server.process.unref()
  ;(server.process.stderr as { unref?: () => void } | null)?.unref?.()
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const s of privateServers) if (s.process.exitCode === null) s.process.kill('SIGKILL')
  })
}

let redisUrlPromise: Promise<string> | undefined
let memcachedPromise: Promise<string> | undefined

/** `redis://127.0.0.1:<port>` of the run's Redis (started on demand when the file runs alone). */
export async function sharedRedisUrl (): Promise<string> {
  if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') return process.env.REDIS_URL
  redisUrlPromise ??= startRedis().then((server) => {
    stopOnExit(server)
    return `redis://${server.host}:${server.port}`
  })
  return await redisUrlPromise
}

/** `127.0.0.1:<port>` of the run's memcached (started on demand when the file runs alone). */
export async function sharedMemcachedServers (): Promise<string> {
  if (process.env.MEMCACHED_SERVERS !== undefined && process.env.MEMCACHED_SERVERS !== '') return process.env.MEMCACHED_SERVERS
  memcachedPromise ??= startMemcached().then((server) => {
    stopOnExit(server)
    return `${server.host}:${server.port}`
  })
  return await memcachedPromise
}

/** A namespace no other test uses, so tests can share one server without clearing it. */
export function uniqueNamespace (prefix = 't'): string {
  return `${prefix}${process.pid.toString(36)}${Math.random().toString(36).slice(2, 8)}`
}

// ---- PostgreSQL ----

export interface RunningPostgres extends RunningServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication on loopback). */
  readonly url: string
}

/** The bin directory of the newest installed PostgreSQL (Debian layout), installing it when missing and root. */
function postgresBinDir (): string {
  const find = (): string | undefined => {
    try {
      const versions = execFileSync('ls', ['/usr/lib/postgresql']).toString().split('\n').filter((v) => /^\d+$/.test(v))
      const newest = versions.sort((a, b) => Number(b) - Number(a))[0]
      return newest === undefined ? undefined : `/usr/lib/postgresql/${newest}/bin`
    } catch {
      return undefined
    }
  }
  const found = find()
  if (found !== undefined) return found
  if (process.getuid?.() !== 0) throw new Error("PostgreSQL is not installed; install the Debian package 'postgresql'")
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'postgresql'], { stdio: 'ignore', env })
  const installed = find()
  if (installed === undefined) throw new Error("installing 'postgresql' did not provide /usr/lib/postgresql/<version>/bin")
  return installed
}

/**
 * Starts a throwaway PostgreSQL on a free loopback port: `initdb` into a temporary directory, then
 * `postgres` with durability off (tests only). PostgreSQL refuses to run as root, so as root the
 * server runs as the `postgres` user, which owns the directory. `stop()` shuts it down fast and
 * removes the directory.
 */
export async function startPostgres (): Promise<RunningPostgres> {
  const bin = postgresBinDir()
  const asRoot = process.getuid?.() === 0
  const run = (command: string, args: string[]): [string, string[]] => asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'traffik-postgres-'))
  const data = join(dir, 'data')
  if (asRoot) execFileSync('chown', ['postgres:', dir])
  const [initdb, initArgs] = run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'])
  execFileSync(initdb, initArgs, { stdio: 'ignore' })
  const [postgres, args] = run(join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'
  ])
  const child = startProcess(postgres, args, dir)
  const [ready, readyArgs] = run(join(bin, 'pg_isready'), ['-h', LOOPBACK, '-p', String(port), '-U', 'postgres'])
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited with code ${child.exitCode} before it answered`)
    try {
      execFileSync(ready, readyArgs, { stdio: 'ignore' })
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`postgres on port ${port} did not become ready within 30 s`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const [pgCtl, stopArgs] = run(join(bin, 'pg_ctl'), ['-D', data, 'stop', '-m', 'immediate', '-w'])
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
      try {
        execFileSync(pgCtl, stopArgs, { stdio: 'ignore' })
      } catch {
        child.kill('SIGKILL')
      }
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }
  // A test file that crashes must not leave a server behind.
  process.once('exit', () => {
    if (stopped) return
    try { execFileSync(pgCtl, stopArgs, { stdio: 'ignore' }) } catch {}
    rmSync(dir, { recursive: true, force: true })
  })
  return { host: LOOPBACK, port, process: child, url: `postgres://postgres@${LOOPBACK}:${port}/postgres`, stop }
}
