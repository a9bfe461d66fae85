/**
 * The one-time warnings about proxies. Behind a proxy that Fastify does not trust, `request.ip` is
 * the proxy's address and every client shares one budget; with `trustProxy: true` the client's own
 * `X-Forwarded-For` becomes its address, so a client picks its budget. Neither shows up as an
 * error, so the plugin says it once, through the app's logger, the first time a request shows it.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'

/** What the check reads of a request. */
interface HeaderBearer {
  headers: Record<string, string | string[] | undefined>
  /** Defined by Fastify only when it trusts proxies. */
  ips?: string[]
}

export const FORWARDED_UNTRUSTED = 'TRAFFIK_WARN_FORWARDED_UNTRUSTED'
export const TRUST_PROXY_ALL = 'TRAFFIK_WARN_TRUST_PROXY_ALL'

const MESSAGES = {
  [FORWARDED_UNTRUSTED]: 'fastify-traffik: requests carry X-Forwarded-For or Forwarded, but Fastify does not trust proxies, ' +
    "so request.ip is the proxy's address and every client behind it shares one budget. Set Fastify's trustProxy to " +
    'your proxies (a hop count such as 1, or their addresses), or give the throttle an identifier. ' +
    'Silence this with validate: { proxyHeaders: false }.',
  [TRUST_PROXY_ALL]: 'fastify-traffik: trustProxy: true trusts every X-Forwarded-For address, so a client can send any ' +
    'address and choose its own budget. Set trustProxy to the number of proxies in front of the app, or their ' +
    'addresses. Silence this with validate: { proxyHeaders: false }.'
} as const

/**
 * Returns the per-request check for limits that identify clients by IP, or undefined when Fastify's
 * `trustProxy` setting leaves nothing to warn about (a hop count, addresses or a function).
 */
export function proxyHeaderCheck (fastify: FastifyInstance, log: FastifyBaseLogger): ((request: HeaderBearer) => void) | undefined {
  const trustProxy = trustProxyOf(fastify)
  if (trustProxy !== undefined && trustProxy !== false && trustProxy !== true) return undefined
  let warned = false
  return (request) => {
    if (warned) return
    const headers = request.headers
    if (headers['x-forwarded-for'] === undefined && headers.forwarded === undefined) return
    // Fastify defines request.ips only when it trusts proxies: that tells the two cases apart
    // even where the setting itself could not be read.
    const code = request.ips === undefined ? FORWARDED_UNTRUSTED : trustProxy === true ? TRUST_PROXY_ALL : undefined
    if (code === undefined) return
    warned = true
    log.warn({ code }, MESSAGES[code])
  }
}

/**
 * Fastify's `trustProxy` option. It is not part of `initialConfig` (it may be a function), so it is
 * read from the options Fastify keeps on the instance; undefined when that cannot be found.
 */
function trustProxyOf (fastify: FastifyInstance): unknown {
  let key: symbol | undefined
  // An encapsulated instance inherits the option from the root through its prototype chain.
  for (let level: object | null = fastify; level !== null && key === undefined; level = Object.getPrototypeOf(level)) {
    key = Object.getOwnPropertySymbols(level).find((symbol) => symbol.description === 'fastify.options')
  }
  const options = key === undefined ? undefined : (fastify as unknown as Record<symbol, { trustProxy?: unknown } | undefined>)[key]
  return options?.trustProxy
}
