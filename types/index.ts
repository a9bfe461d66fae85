/** The public type surface. Importing it also brings the Fastify augmentation. */
import './fastify.js'

export type { Decision } from './decision.js'
export type { Strategy, StrategyState, StepResult, WindowCounterPlan } from './strategy.js'
export type {
  DecisionEvent, ErrorContext, ErrorDecision, ErrorHandler, ErrorPolicy, IdentifierResult, MaybePromise, OnErrorOption, RouteRateLimit,
  ThrottledInfo, ThrottleOptions, TraffikPluginOptions
} from './options.js'
