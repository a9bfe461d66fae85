import t from 'tap'
import * as api from '../../lib/index.js'

t.test('the feature names of the public contract are exported', async (t) => {
  for (const name of ['throttleIf', 'bypassIf', 'failover', 'retry', 'CircuitBreaker', 'reserveAll', 'limitMessages'] as const) {
    t.equal(typeof api[name], 'function', name)
  }
})
