/**
 * The throttle option `lease` (docs/leases.md), compiled once when the throttle is built: the
 * policy every op of the throttle carries to its backend. Only strategies whose leases can be
 * bounded take it: FixedWindow (a lease ends with its window, unused units are given back
 * exactly) and TokenBucket (a lease moves tokens earlier by at most `ttlMs`; unused ones lapse).
 */
import type { LeasePolicy } from '../../types/backend.js'
import type { Strategy } from '../../types/strategy.js'
import { systemClock } from '../clock.js'
import { ConflictingOptionsError, invalidOption } from '../errors.js'
import { rejectUnknownKeys } from '../options.js'
import { FixedWindow } from '../strategies/fixed-window.js'
import { TokenBucket } from '../strategies/token-bucket.js'
import type { LeaseOptions } from './option-types.js'

const LEASE_KEYS: readonly string[] = ['maxUnits', 'maxShare', 'ttlMs', 'maxKeys', 'clock']

/** The policy of `option`; undefined when leases are off. */
export function compileLease (option: unknown): Omit<LeasePolicy, 'endsWithWindow' | 'givesBack'> | undefined {
  if (option === undefined || option === false) return undefined
  if (option !== true && (option === null || typeof option !== 'object')) invalidOption('lease', 'a boolean or { maxUnits, maxShare, ttlMs, maxKeys, clock }', option)
  const given = option === true ? {} : option as LeaseOptions
  rejectUnknownKeys('lease', given, LEASE_KEYS, 'lease')
  const { maxUnits = 10, maxShare = 0.1, ttlMs = 1000, maxKeys = 10_000, clock = systemClock } = given
  if (!Number.isSafeInteger(maxUnits) || maxUnits < 1) invalidOption('lease.maxUnits', 'a positive integer', maxUnits)
  if (typeof maxShare !== 'number' || !(maxShare > 0 && maxShare <= 1)) invalidOption('lease.maxShare', 'a number in (0, 1]', maxShare)
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 1) invalidOption('lease.ttlMs', 'a finite number of milliseconds >= 1', ttlMs)
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) invalidOption('lease.maxKeys', 'a positive integer', maxKeys)
  if (clock === null || typeof clock !== 'object' || typeof clock.now !== 'function') invalidOption('lease.clock', 'an object with a now() method', clock)
  return { maxUnits, maxShare, ttlMs, maxKeys, now: () => clock.now() }
}

/**
 * The policy for a throttle's strategy; a strategy whose leases cannot be bounded, or an option
 * that decides differently per request or counts offences at the store, is refused.
 */
export function leaseFor (uid: string, compiled: Omit<LeasePolicy, 'endsWithWindow' | 'givesBack'>, strategy: Strategy, conflicting: string | undefined): LeasePolicy {
  if (conflicting !== undefined) {
    throw new ConflictingOptionsError('lease', conflicting, `throttle '${uid}': a lease decides hits locally, which ${conflicting} cannot allow (see docs/leases.md)`)
  }
  if (strategy instanceof FixedWindow) return Object.freeze({ ...compiled, endsWithWindow: true, givesBack: true })
  if (strategy instanceof TokenBucket) return Object.freeze({ ...compiled, endsWithWindow: false, givesBack: false })
  return invalidOption('lease', `false for ${strategy.name} on throttle '${uid}' (leases take FixedWindow or TokenBucket; see docs/leases.md for why the others are refused)`, true)
}
