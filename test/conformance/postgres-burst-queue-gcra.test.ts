import { postgresBurstTests } from './postgres-burst.js'

await postgresBurstTests(['LeakyBucketWithQueue', 'GCRA'])
