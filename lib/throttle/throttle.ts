/**
 * Throttle: one limit (rate + strategy + identifier + cost + error policy + headers), usable with
 * the plugin or on its own. The public face of a limit core: every request method goes through
 * the one-limit group, the same pipeline a route's limits use. Framework-agnostic: it reads a
 * request-like object (`ip`, `throttleBackend`) and, for its hook, writes to a reply-like object.
 */
import type { Decision } from '../../types/decision.js'
import type { Strategy } from '../../types/strategy.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import { UNLIMITED_DECISION } from '../decision.js'
import type { Rate } from '../rate.js'
import type { BackendResolver, CostOptions, ShadowSwitch, ThrottleRequest, ThrottleView } from './contracts.js'
import { notifyOutcome, observerListener, type DecisionObserver } from './decision-events.js'
import { createEnforcer, type EnforceHook } from './enforce.js'
import { Limit } from './limit.js'
import { LimitGroup } from './limit-group.js'
import type { ShadowOptions, ThrottleOptions } from './option-types.js'
import { reserveLimits, type Reservation } from './reservation.js'
import type { Telemetry } from './telemetry.js'

/** The limit core behind each throttle, for the plugin's wiring (not part of the public class). */
const cores = new WeakMap<Throttle, Limit>()

export class Throttle implements ThrottleView {
  readonly #limit: Limit
  readonly #group: LimitGroup
  #hook: EnforceHook | undefined

  constructor (options: ThrottleOptions & { uid: string }) {
    this.#limit = new Limit(options)
    this.#group = new LimitGroup([this.#limit])
    cores.set(this, this.#limit)
  }

  // ---- configuration (live: the next request sees it) ----

  get uid (): string {
    return this.#limit.uid
  }

  /** The static rate, or undefined when the rate is computed per request. */
  get rate (): Rate | undefined {
    return this.#limit.rate
  }

  get strategy (): Strategy {
    return this.#limit.strategy
  }

  get disabled (): boolean {
    return this.#limit.disabled
  }

  /**
   * Whether the throttle is in shadow mode: deciding and charging as usual but never rejecting
   * (its own setting, or its registry's `fastify.throttle.setShadow(true)`).
   */
  get shadow (): boolean {
    return this.#limit.shadow
  }

  /** Whether the throttle reads the request's backend. */
  get dynamicBackend (): boolean | 'required' {
    return this.#limit.dynamicBackend
  }

  /** The pinned backend, if any. */
  get backend (): ThrottleBackend | undefined {
    return this.#limit.backend
  }

  /** Replaces the rate (any form `rate` accepts). Takes effect on the next request. */
  updateRate (rate: ThrottleOptions['rate']): void {
    this.#limit.setRate(rate)
  }

  /** Replaces the strategy. Existing counters of the old strategy are read as far as they are compatible. */
  updateStrategy (strategy: Strategy): void {
    this.#limit.setStrategy(strategy)
  }

  /** Replaces the cost (number or function). */
  updateCost (cost: ThrottleOptions['cost']): void {
    this.#limit.setCost(cost)
  }

  /** Stops limiting: requests pass without headers or backend calls until `enable()`. */
  disable (): void {
    this.#limit.setDisabled(true)
  }

  enable (): void {
    this.#limit.setDisabled(false)
  }

  /**
   * Switches shadow mode (`true`, `false`, or `{ headers: true }` to keep writing its headers).
   * Takes effect on the next request.
   */
  setShadow (shadow: boolean | ShadowOptions): void {
    this.#limit.setShadow(shadow)
  }

  /** The backend this request's counters live in. */
  backendFor (request: ThrottleRequest): ThrottleBackend {
    return this.#limit.backendFor(request)
  }

  /**
   * A Fastify hook enforcing this throttle alone: usable as `onRequest` / `preHandler` of any
   * route, including `setNotFoundHandler({ preHandler: throttle.hook }, ...)`.
   */
  get hook (): EnforceHook {
    this.#hook ??= createEnforcer(this.#group, observerListener(this.#limit.observer), { exposeOutcome: true })
    return this.#hook
  }

  // ---- public request API ----

  /** Consumes capacity and returns the decision, without touching any reply. */
  async hit (request: ThrottleRequest, options: CostOptions = {}): Promise<Decision> {
    const outcome = await this.#group.decide(request, 'hit', options.cost)
    if (outcome === undefined) return UNLIMITED_DECISION
    const observer = this.#limit.observer
    if (observer !== undefined) notifyOutcome(observer, request, outcome)
    return outcome.decision
  }

  /**
   * Charges `cost` now and returns a reservation: `commit()` keeps the charge, `refund()` gives
   * the capacity back (through the strategy's refund, as far as the charge is still in force).
   * A rejected reservation charged nothing; its `commit`/`refund` do nothing. Run the work only
   * when `reservation.decision.allowed`.
   */
  async reserve (request: ThrottleRequest, options: CostOptions = {}): Promise<Reservation> {
    return await reserveLimits(this.#group, request, options.cost)
  }

  /** Answers whether a request of this cost would be allowed, without consuming. */
  async check (request: ThrottleRequest, options: CostOptions = {}): Promise<Decision> {
    return (await this.#group.decide(request, 'check', options.cost))?.decision ?? UNLIMITED_DECISION
  }

  /** Reports the current state of the request's client without consuming. */
  async stat (request: ThrottleRequest): Promise<Decision> {
    return (await this.#group.decide(request, 'check', 0))?.decision ?? UNLIMITED_DECISION
  }

  /**
   * Clears counters: those of the request's client when a request is given, otherwise the whole
   * throttle on its backend (the backend must support `clearPrefix`).
   */
  async reset (request?: ThrottleRequest): Promise<void> {
    const limit = this.#limit
    if (request === undefined) {
      const backend = limit.resettableBackend
      if (backend !== undefined) await backend.clearPrefix(limit.keyPrefix)
      return
    }
    // Rules decide whether a request is limited, not whose counters an operator may clear.
    const prepared = await limit.prepare(request, 0, false)
    if (prepared !== undefined) await prepared.backend.delete(prepared.op.key)
  }
}

/** The limit core of a throttle (for the plugin, which decides route limits as one group). */
export function limitOf (throttle: Throttle): Limit {
  return cores.get(throttle)!
}

/** What the plugin hands a throttle it adopts: its registry's shadow switch, backend resolver and telemetry. */
export interface Adoption {
  shadowSwitch?: ShadowSwitch
  resolver?: BackendResolver
  telemetry?: Telemetry
}

/**
 * Wires a throttle into a registry: the backend it uses when none is pinned, the observer of its
 * decisions, the registry's shadow switch and backend resolver. Attach before the hook is first used.
 */
export function adoptThrottle (throttle: Throttle, backend: ThrottleBackend, observer: DecisionObserver | undefined, { shadowSwitch, resolver, telemetry }: Adoption = {}): void {
  const limit = limitOf(throttle)
  limit.setFallbackBackend(backend)
  if (telemetry !== undefined) limit.setTelemetry(telemetry)
  if (shadowSwitch !== undefined) limit.addShadowSwitch(shadowSwitch)
  if (observer !== undefined) limit.setObserver(observer)
  if (resolver !== undefined) limit.setBackendResolver(resolver)
}

/**
 * Creates a throttle outside the plugin (jobs, scripts, WebSocket handlers). `uid` is required.
 * Without `backend` it keeps its counters in a private InMemoryBackend.
 */
export function createThrottle (options: ThrottleOptions & { uid: string }): Throttle {
  return new Throttle(options)
}

/**
 * Reserves `cost` on every throttle at once: either all are charged, or none is (the rejection
 * reports the most restrictive limit). Refunding the reservation refunds every throttle.
 *
 * ```ts
 * const reservation = await reserveAll(request, [perMinute, perDay], { cost: 5 })
 * if (!reservation.decision.allowed) return reply.code(429).send()
 * try { await work(); reservation.commit() } catch (error) { await reservation.refund(); throw error }
 * ```
 */
export async function reserveAll (request: ThrottleRequest, throttles: readonly Throttle[], options: CostOptions = {}): Promise<Reservation> {
  return await reserveLimits(new LimitGroup(throttles.map(limitOf)), request, options.cost)
}
