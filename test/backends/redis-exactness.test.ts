/**
 * 4 processes sharing one Redis admit exactly what one in-memory process admits, for every
 * strategy (one EVALSHA per decision, no locks).
 */
import { exactnessSuite } from '../helpers/exactness-suite.js'
import { sharedRedisUrl } from '../../scripts/support/services.js'

exactnessSuite('redis', await sharedRedisUrl())
