import { postgresBurstTests } from './postgres-burst.js'

await postgresBurstTests(['SlidingWindowLog', 'TokenBucket'])
