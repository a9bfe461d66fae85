/**
 * `fastify-traffik/backend`: what authors of custom backends (and of strategies) need beyond the
 * base class: the contract's value types, the deadline helper, the backend made active by
 * `backend.run(fn)`, and the state codecs the built-in strategies use. Guide: docs/backends/custom.md.
 */
export { ThrottleBackend, activeBackend, withDeadline } from './backends/throttle-backend.js'
export type { BackendHealth, BackendLock, BackendStartup, BackendState, BackendTransition, EvaluateMode, EvaluateOp, LeasePolicy, ThrottleBackendOptions } from '../types/backend.js'
export type { Decision } from '../types/decision.js'
export type { Strategy, StrategyState, StepResult, WindowCounterPlan, PeriodPlan } from '../types/strategy.js'
export { encodeState, decodeState, decodeList } from './strategies/state-codec.js'
