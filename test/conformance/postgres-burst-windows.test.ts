import { postgresBurstTests } from './postgres-burst.js'

await postgresBurstTests(['FixedWindow', 'SlidingWindowCounter'])
