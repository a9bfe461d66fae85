/**
 * fastify-traffik: rate limiting for Fastify 5.
 */
import '../types/fastify.js'
import { traffik } from './plugin/index.js'

export { traffik }
export default traffik

export type * from '../types/index.js'

export { ThrottleBackend, activeBackend, withDeadline } from './backends/throttle-backend.js'
export type { BackendHealth, BackendLock, EvaluateMode, EvaluateOp, ThrottleBackendOptions } from './backends/throttle-backend.js'
export { InMemoryBackend } from './backends/in-memory-backend.js'
export type { InMemoryBackendOptions } from './backends/in-memory-backend.js'
export { MemcachedBackend } from './backends/memcached-backend.js'
export type { MemcachedBackendOptions, MemcachedClient, MemjsClientOptions } from './backends/memcached-backend.js'
export { RedisBackend } from './backends/redis-backend.js'
export type { RedisBackendOptions, RedisClient, RedisConnection } from './backends/redis-backend.js'

export {
  FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket, TokenBucketWithDebt,
  LeakyBucket, LeakyBucketWithQueue, GCRA
} from './strategies/index.js'
export type {
  TokenBucketOptions, TokenBucketWithDebtOptions, LeakyBucketOptions, LeakyBucketWithQueueOptions, GCRAOptions
} from './strategies/index.js'
export { encodeState, decodeState, decodeList } from './strategies/state-codec.js'

export { Throttle, createThrottle } from './throttle/throttle.js'
export type { CostOptions, PreparedLimit, ThrottleRequest } from './throttle/throttle.js'
export type { DecisionObserver } from './throttle/decision-events.js'
export { LimitGroup } from './throttle/limit-group.js'
export type { GroupOutcome } from './throttle/limit-group.js'
export { throttleIf, bypassIf } from './throttle/rules.js'
export type { Rule, RuleCriteria, RulePredicate, RuleRequest } from './throttle/rules.js'
export { reserveAll } from './throttle/reservation.js'
export type { Reservation, ReservationState } from './throttle/reservation.js'
export { failover, retry } from './throttle/error-handlers.js'
export type { ErrorMatcher, FailoverOptions, GuardContext, GuardedErrorHandler, RetryOptions } from './throttle/error-handlers.js'
export { CircuitBreaker } from './throttle/circuit-breaker.js'
export { limitMessages, throttledFrame } from './throttle/websocket.js'
export type { LimitMessagesOptions, MessageSocket, StopLimiting, ThrottledFrame } from './throttle/websocket.js'
export type { BreakerState, BreakerStateChange, CircuitBreakerOptions } from './throttle/circuit-breaker.js'
export { EXEMPTED, defaultIdentifier } from './throttle/identifier.js'
export { UNLIMITED_DECISION } from './decision.js'
export { ThrottleController } from './plugin/throttle-controller.js'

export { parseRate, formatRate, UNLIMITED } from './rate.js'
export type { Rate, RateInput } from './rate.js'
export { ManualClock, systemClock } from './clock.js'
export type { Clock } from './clock.js'
export { compileHeaders, toSeconds } from './headers.js'
export type {
  HeadersOption, HeaderWriter, HeaderTarget, CustomHeaders, CustomHeaderSpec, HeaderField, HeaderWhen, ThrottledHeaderField
} from './headers.js'

export {
  BackendError, BackendTimeoutError, BackendClosedError, RateLimitedError, InvalidOptionError, InvalidRateError,
  InvalidRouteConfigError, ConflictingOptionsError, InvalidIdentifierError, InvalidCostError,
  InvalidDynamicRateError, UnsupportedError, errorCodes
} from './errors.js'
