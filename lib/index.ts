/**
 * fastify-traffik: rate limiting for Fastify 5. The documented contract, and nothing internal:
 * tools for authors of custom backends are in `fastify-traffik/backend`, the conformance kit in
 * `fastify-traffik/testing`.
 */
import './plugin/fastify-augmentation.js'
import { traffik } from './plugin/index.js'
import { useStrategyCodec } from './backends/cluster-backend.js'
import { strategyCodec } from './strategies/strategy-spec.js'

// ClusterBackend sends strategies to the primary as specs; backends know no strategy, so the
// entry point hands it the strategies' codec.
useStrategyCodec(strategyCodec)

export { traffik }
export default traffik
export type { TraffikPluginOptions } from './plugin/plugin-options.js'
export type { RouteRateLimit, RouteThrottleOptions } from './plugin/route-rate-limit.js'
export type { ThrottleController } from './plugin/throttle-controller.js'
export type { BackendHealthReport, HealthOptions, ThrottleHealth } from './plugin/health.js'

export type { Decision, EscalationState } from '../types/decision.js'
export type { Strategy, StrategyState, StepResult, WindowCounterPlan, PeriodPlan } from '../types/strategy.js'
export type { BackendHealth, BackendStartup, BackendState, BackendTransition, BlockCacheOptions, ThrottleBackendOptions } from '../types/backend.js'

export { ThrottleBackend } from './backends/throttle-backend.js'
export { InMemoryBackend } from './backends/in-memory-backend.js'
export type { InMemoryBackendOptions } from './backends/in-memory-backend.js'
export { MemcachedBackend } from './backends/memcached-backend.js'
export type { MemcachedBackendOptions, MemcachedClient, MemjsClientOptions } from './backends/memcached-backend.js'
export { RedisBackend } from './backends/redis-backend.js'
export { ClusterBackend, ClusterPrimaryError } from './backends/cluster-backend.js'
export type { ClusterBackendOptions, ClusterPrimary, ClusterPrimaryOptions } from './backends/cluster-backend.js'
export type { RedisBackendOptions, RedisClient, RedisConnection, RedisDriverName } from './backends/redis-backend.js'

export {
  FixedWindow, SlidingWindowCounter, SlidingWindowLog, TokenBucket, TokenBucketWithDebt,
  LeakyBucket, LeakyBucketWithQueue, GCRA, Concurrency, CalendarQuota
} from './strategies/index.js'
export type {
  TokenBucketOptions, TokenBucketWithDebtOptions, LeakyBucketOptions, LeakyBucketWithQueueOptions, GCRAOptions,
  CalendarQuotaOptions, CalendarAnchor, CalendarPeriod, ConcurrencyOptions
} from './strategies/index.js'

export { Throttle, createThrottle, reserveAll } from './throttle/throttle.js'
export { cachedRate, type CachedRate, type CachedRateOptions } from './throttle/cached-rate.js'
export { tieredRate } from './throttle/tiered-rate.js'
export type { RateFunction, TieredRateOptions } from './throttle/tiered-rate.js'
export { timeOfDay } from './throttle/time-of-day.js'
export type { TimeOfDayOptions, TimeOfDayWindow } from './throttle/time-of-day.js'
export type { CostOptions, ThrottleRequest, ThrottleView } from './throttle/contracts.js'
export type {
  DecisionEvent, ErrorContext, ErrorDecision, ErrorHandler, ErrorPolicy, GuardedErrorHandler, IdentifierResult,
  MaybePromise, OnErrorOption, ShadowOptions, ThrottledInfo, ThrottleOptions, EscalationOptions, BanOptions, BanInfo, PriorityOptions, AdaptiveOptions, LeaseOptions
} from './throttle/option-types.js'
export type { EscalationFactor, EscalationPolicy } from './strategies/escalation.js'
export type { GroupOutcome, ShadowVerdict } from './throttle/limit-group.js'
export type { MeterLike, SpanLike, TelemetryAttributes, TracerLike } from './throttle/telemetry.js'
export type { TelemetryOptions } from './plugin/telemetry-options.js'
export type { FleetOverrides, OverrideEntry, OverridesOptions, OverrideTarget } from './plugin/fleet-overrides.js'
export type { OverrideValues } from './throttle/overrides.js'
export type { Reservation, ReservationState } from './throttle/reservation.js'
export type { ListsOptions, ListSource } from './throttle/lists.js'
export { throttleIf, bypassIf } from './throttle/rules.js'
export type { Rule, RuleCriteria, RulePredicate } from './throttle/rules.js'
export { failover, retry } from './throttle/error-handlers.js'
export type { ErrorMatcher, FailoverOptions, RetryOptions } from './throttle/error-handlers.js'
export { CircuitBreaker } from './throttle/circuit-breaker.js'
export type { BreakerState, BreakerStateChange, CircuitBreakerOptions } from './throttle/circuit-breaker.js'
export { limitMessages, throttledFrame } from './throttle/websocket.js'
export type { LimitMessagesOptions, MessageSocket, StopLimiting, ThrottledFrame } from './throttle/websocket.js'
export { EXEMPTED, defaultIdentifier } from './throttle/identifier.js'

export { parseRate, formatRate } from './rate.js'
export type { Rate, RateInput } from './rate.js'
export { ManualClock, systemClock } from './clock.js'
export type { Clock } from './clock.js'
export type {
  HeadersOption, CustomHeaders, CustomHeaderSpec, HeaderField, HeaderWhen, ThrottledHeaderField
} from './headers.js'

export {
  BackendError, BackendTimeoutError, BackendClosedError, BackendUnavailableError, RateLimitedError, DeniedError, BannedError, InvalidOptionError, InvalidRateError,
  InvalidRouteConfigError, ConflictingOptionsError, InvalidIdentifierError, InvalidCostError,
  InvalidDynamicRateError, UnsupportedError, MissingDependencyError, UnseenRouteError, NoBackendError, errorCodes
} from './errors.js'
