/**
 * `node --import tsx scripts/bench/cluster-profile.ts [decisions] [concurrency]`: the cost of one
 * ClusterBackend decision on both sides of the IPC channel, without HTTP in the way. Two
 * node:cluster workers each decide on one hot key with `concurrency` loops until each has made
 * `decisions`; the run reports decisions per second over both, and the CPU µs per decision of the
 * primary (which holds the state and decides) and of the workers (`process.cpuUsage()`).
 */
import cluster from 'node:cluster'
import { ClusterBackend, FixedWindow } from '../../lib/index.js'

const decisions = Number(process.argv[2] ?? 40_000)
const concurrency = Number(process.argv[3] ?? 50)
const WORKERS = 2

interface Done { type: 'profile-done', cpuMicros: number }

if (cluster.isPrimary) {
  const primary = ClusterBackend.attachPrimary()
  const cpuStart = process.cpuUsage()
  const started = performance.now()
  let finished = 0
  let workersCpu = 0
  for (let i = 0; i < WORKERS; i++) {
    cluster.fork().on('message', (message: Done) => {
      if (message?.type !== 'profile-done') return
      workersCpu += message.cpuMicros
      if (++finished < WORKERS) return
      const seconds = (performance.now() - started) / 1000
      const cpu = process.cpuUsage(cpuStart)
      const total = WORKERS * decisions
      console.log(`${total} decisions on one key over ${WORKERS} workers, ${concurrency} at a time in each`)
      console.log('| decisions/s | primary CPU µs/decision | workers CPU µs/decision |')
      console.log('|---|---|---|')
      console.log(`| ${Math.round(total / seconds)} | ${((cpu.user + cpu.system) / total).toFixed(1)} | ${(workersCpu / total).toFixed(1)} |`)
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
      primary.detach().then(() => { process.exit(0) }, () => { process.exit(1) })
    })
  }
} else {
  const backend = new ClusterBackend({ namespace: 'profile' })
  await backend.initialize()
  const ops = [{ strategy: new FixedWindow(), key: 'hot', limit: 1_000_000_000, windowMs: 60_000, cost: 1 }]
  const cpuStart = process.cpuUsage()
  let left = decisions
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) await backend.evaluate(ops, 'hit')
  }))
  const cpu = process.cpuUsage(cpuStart)
  process.send!({ type: 'profile-done', cpuMicros: cpu.user + cpu.system } satisfies Done)
}
