/**
 * `fastify.throttle`: the per-instance registry of throttles and the controls tests and operators
 * use. One per Fastify instance, so building many apps in one process never clashes on uids.
 */
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import type { BackendResolver } from '../throttle/contracts.js'
import type { DecisionObserver } from '../throttle/decision-events.js'
import type { ThrottleOptions } from '../throttle/option-types.js'
import type { Telemetry } from '../throttle/telemetry.js'
import { adoptThrottle, limitOf, Throttle } from '../throttle/throttle.js'
import { invalidOption } from '../errors.js'
import { FleetOverrides, type OverridesOptions } from './fleet-overrides.js'
import { checkHealth, type HealthOptions, type ThrottleHealth } from './health.js'
import { mergeThrottleOptions } from './plugin-options.js'

/** What every throttle of the registry is wired to besides its backend and observer. */
export interface RegistryWiring {
  /** Requests the plugin's allow list admitted: every throttle skips them. */
  allowed?: WeakSet<object>
  /** The plugin's `resolveBackend`, asked when a dynamic throttle runs. */
  resolver?: BackendResolver
  /** The plugin's OpenTelemetry instruments. */
  telemetry?: Telemetry
  /** The plugin's `overrides` option; omitted or false: no fleet overrides. */
  overrides?: Required<OverridesOptions> | false
}

export class ThrottleController {
  /** The plugin's default backend. */
  readonly backend: ThrottleBackend
  readonly #owned: readonly ThrottleBackend[]
  readonly #defaults: Readonly<ThrottleOptions>
  readonly #throttles = new Map<string, Throttle>()
  readonly #all = new Set<Throttle>()
  readonly #observer: DecisionObserver | undefined
  /** Read by every throttle of this instance on each request (`setShadow`). */
  readonly #shadowSwitch = { shadow: false }
  readonly #allowed: WeakSet<object> | undefined
  readonly #resolver: BackendResolver | undefined
  readonly #telemetry: Telemetry | undefined
  #created = 0
  /**
   * Overrides of this app's throttles for every instance at once (set, get, clear, list), kept in
   * the default backend and applied here within `refreshMs`. Undefined with `overrides: false`.
   * See docs/overrides.md.
   */
  readonly overrides: FleetOverrides | undefined

  constructor (backend: ThrottleBackend, owned: readonly ThrottleBackend[], defaults: Readonly<ThrottleOptions>, observer?: DecisionObserver, { allowed, resolver, telemetry, overrides }: RegistryWiring = {}) {
    this.backend = backend
    this.overrides = overrides === undefined || overrides === false ? undefined : new FleetOverrides(backend, overrides, () => this.#all)
    this.#owned = owned
    this.#defaults = defaults
    this.#observer = observer
    this.#allowed = allowed
    this.#telemetry = telemetry
    this.#resolver = resolver
  }

  /** Every throttle of this instance by uid (the first one registered for a shared uid). */
  get throttles (): ReadonlyMap<string, Throttle> {
    return this.#throttles
  }

  /** The throttle with this uid, if any. */
  get (uid: string): Throttle | undefined {
    return this.#throttles.get(uid)
  }

  /**
   * Creates a throttle that inherits the plugin's `defaults` and default backend, and registers
   * it. Use it with `throttle.hook`, `throttle.hit(request)` or in a route's `config.rateLimit`.
   */
  create (options: ThrottleOptions): Throttle {
    if (options === null || typeof options !== 'object') invalidOption('options', 'an object of throttle options', options)
    const uid = options.uid ?? `throttle#${++this.#created}`
    return this.build({ ...options, uid })
  }

  /** Builds and registers a throttle from options merged over the defaults. */
  build (options: ThrottleOptions & { uid: string }): Throttle {
    const throttle = new Throttle(mergeThrottleOptions(this.#defaults, options))
    return this.adopt(throttle)
  }

  /** Registers a throttle built elsewhere and gives it the default backend. */
  adopt (throttle: Throttle): Throttle {
    adoptThrottle(throttle, this.backend, this.#observer, { shadowSwitch: this.#shadowSwitch, resolver: this.#resolver, telemetry: this.#telemetry })
    if (this.#allowed !== undefined) limitOf(throttle).setRegistryAllowed(this.#allowed)
    this.overrides?.adopt(throttle)
    if (!this.#throttles.has(throttle.uid)) this.#throttles.set(throttle.uid, throttle)
    this.#all.add(throttle)
    return throttle
  }

  /** Clears every backend the plugin owns. Tests call it between cases. */
  async reset (): Promise<void> {
    for (const backend of this.#owned) await backend.reset()
  }

  /**
   * Probes every backend the plugin owns (`healthCheck()`, each within `options.timeoutMs`) and
   * answers for a readiness route: `{ ok, backends: [{ name, namespace, state, healthy, latencyMs, error? }] }`,
   * plain JSON. Never rejects for a failing backend.
   */
  async health (options?: HealthOptions): Promise<ThrottleHealth> {
    return await checkHealth(this.#owned, options)
  }

  /** Every throttle of this instance, including throttles that share a uid with another. */
  get all (): ReadonlySet<Throttle> {
    return this.#all
  }

  /** Stops every throttle of this instance from limiting (until `enableAll()` or its own `enable()`). */
  disableAll (): void {
    for (const throttle of this.#all) throttle.disable()
  }

  enableAll (): void {
    for (const throttle of this.#all) throttle.enable()
  }

  /** Whether every throttle of this instance is in shadow mode (`setShadow(true)`). */
  get shadow (): boolean {
    return this.#shadowSwitch.shadow
  }

  /**
   * Puts every throttle of this instance in shadow mode, those created later included (`true`),
   * or returns each to its own `shadow` setting (`false`). Takes effect on the next request.
   */
  setShadow (shadow: boolean): void {
    if (typeof shadow !== 'boolean') invalidOption('shadow', 'a boolean', shadow)
    this.#shadowSwitch.shadow = shadow
  }
}
