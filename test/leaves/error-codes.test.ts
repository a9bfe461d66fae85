import { readFileSync } from 'node:fs'
import t from 'tap'
import * as api from '../../lib/index.js'
import { errorCodes } from '../../lib/index.js'

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
const documented = [...docs.matchAll(/^\| `(TRAFFIK_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1])

t.test('every error code is documented, and every documented code exists', async (t) => {
  t.same([...documented].sort(), Object.keys(errorCodes).sort())
})

t.test('each code matches its key and its constructor is exported', async (t) => {
  for (const [code, ErrorClass] of Object.entries(errorCodes)) {
    const error = new (ErrorClass as unknown as new (...args: unknown[]) => Error & { code: string })('a', 'b', 'c')
    t.equal(error.code, code)
    t.ok(Object.values(api).includes(ErrorClass), `${code} is exported`)
  }
})

t.test('backend errors keep their cause and are BackendErrors', async (t) => {
  const cause = new Error('ECONNREFUSED')
  const error = new api.BackendError('redis.evaluate', 'refused', { cause })
  t.equal(error.cause, cause)
  t.ok(new api.BackendTimeoutError('redis', 250) instanceof api.BackendError, 'a timeout is a BackendError')
  t.equal(new api.BackendTimeoutError('redis', 250).code, 'TRAFFIK_ERR_BACKEND_TIMEOUT')
})
