/**
 * 4 node:cluster workers sharing one ClusterBackend admit exactly what one in-memory process
 * admits, for every strategy: this test process is their primary and holds the state.
 */
import cluster from 'node:cluster'
import t from 'tap'
import { ClusterBackend } from '../../lib/index.js'
import { exactnessSuite } from '../helpers/exactness-suite.js'

const primary = ClusterBackend.attachPrimary()
t.teardown(async () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
  await primary.detach()
})
exactnessSuite('ClusterBackend', undefined, { label: 'a ClusterBackend (node:cluster primary)' })
