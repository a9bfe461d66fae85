/**
 * 4 processes sharing one memcached admit exactly what one in-memory process admits, for every
 * strategy (counter strategies through atomic incr, the others through CAS).
 */
import { exactnessSuite } from '../helpers/exactness-suite.js'
import { sharedMemcachedServers } from '../../scripts/support/services.js'

exactnessSuite('memcached', await sharedMemcachedServers())
