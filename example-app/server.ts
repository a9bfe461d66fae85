/**
 * Starts the example app: `npm run example` (in-memory backend, port 3000 unless PORT is set).
 */
import { build } from './app.js'

const app = await build({ logger: true })
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'closing')
    app.close().then(() => process.exit(0), (error: unknown) => {
      app.log.error(error)
      process.exit(1)
    })
  })
}

await app.listen({ port, host })
