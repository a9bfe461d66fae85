import t from 'tap'
import { InMemoryBackend } from '../../lib/index.js'
import { runBackendConformance } from '../../lib/testing/index.js'

runBackendConformance({
  test: t.test.bind(t),
  makeBackend: (namespace) => new InMemoryBackend({ namespace }),
  makeFailingBackend: null
})
