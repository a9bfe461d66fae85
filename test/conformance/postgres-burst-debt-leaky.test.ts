import { postgresBurstTests } from './postgres-burst.js'

await postgresBurstTests(['TokenBucketWithDebt', 'LeakyBucket'])
