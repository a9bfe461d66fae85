/**
 * The contracts of the throttle room: what a throttle reads of a request, what callbacks see of a
 * throttle, and the shape of the steps that wrap a backend call. Types and one marker symbol; no
 * behaviour. Everything else in the room builds on these.
 */
import type { Decision } from '../../types/decision.js'
import type { EvaluateMode, EvaluateOp } from '../../types/backend.js'
import type { Strategy } from '../../types/strategy.js'
import type { ThrottleBackend } from '../backends/throttle-backend.js'
import type { Rate } from '../rate.js'
import type { RuleRequest } from './rules.js'

/** The request fields a throttle reads. A Fastify request fits. */
export interface ThrottleRequest extends RuleRequest {
  ip?: string
  throttleBackend?: ThrottleBackend | null
  log?: { warn(obj: unknown, msg?: string): void, info?(obj: unknown, msg?: string): void }
}

/**
 * Chooses a request's backend for dynamic limits (the plugin's `resolveBackend`, wrapped so it
 * runs once per request and stores its answer on `request.throttleBackend`).
 */
export type BackendResolver = (request: ThrottleRequest) => ThrottleBackend | null | undefined | Promise<ThrottleBackend | null | undefined>

/** Options of `hit`, `check` and `reserve`. */
export interface CostOptions {
  /**
   * Overrides the throttle's cost for this call.
   * @default the throttle's `cost`
   */
  cost?: number
}

/**
 * What callbacks (`onError`, `onThrottled`, `onDecision`, `request.rateLimit`) see of a throttle:
 * its configuration as it is now, read-only.
 */
export interface ThrottleView {
  readonly uid: string
  /** The static rate, or undefined when the rate is computed per request. */
  readonly rate: Rate | undefined
  readonly strategy: Strategy
  readonly disabled: boolean
  /** Whether the throttle is in shadow mode (its own setting or its registry's). */
  readonly shadow: boolean
  readonly dynamicBackend: boolean | 'required'
  /** The pinned backend, if any. */
  readonly backend: ThrottleBackend | undefined
}

/**
 * A switch that puts every throttle sharing it in shadow mode at once (the plugin's
 * `fastify.throttle.setShadow`), whatever their own setting.
 */
export interface ShadowSwitch {
  readonly shadow: boolean
}

/** What a guard step sees of one backend call. */
export interface GuardContext {
  readonly request: ThrottleRequest
  readonly throttle: ThrottleView
  /** The backend the call is meant for (the primary). */
  readonly backend: ThrottleBackend
  readonly ops: readonly EvaluateOp[]
  readonly mode: EvaluateMode
  /**
   * Records that `decisions` were decided on `backend` rather than the primary (a failover), so
   * their charges are given back where they were made.
   */
  readonly answeredBy: (decisions: readonly Decision[], backend: ThrottleBackend) => void
}

/** A step wrapping the backend call: `next()` runs the steps inside it and, innermost, the call. */
export type GuardStep = (next: () => Promise<Decision[]>, context: GuardContext) => Promise<Decision[]>

/** Marks an `onError` handler that can also wrap the backend call (what `retry` and `failover` return). */
export const GUARD: unique symbol = Symbol.for('fastify-traffik.backend-guard') as never
