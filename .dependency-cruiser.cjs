/**
 * The ladder of rooms (DESIGN §3) as rules; `npm test` runs them. Each rule says why it exists.
 * @type {import('dependency-cruiser').IConfiguration}
 */
const below = (...rooms) => rooms.map((room) => `^lib/${room}`).join('|')

const SIBLINGS = ['strategies', 'backends', 'headers']
const ABOVE_SIBLINGS = ['throttle', 'plugin', 'testing', 'index', 'backend\\.ts']

/** Strategies, backends and headers stand side by side: none imports another, nor anything above them. */
const siblings = (room, path, comment) => ({
  name: `${room}-are-siblings`,
  comment,
  severity: 'error',
  from: { path: `^${path}` },
  to: { path: below(...SIBLINGS.filter((other) => other !== room), ...ABOVE_SIBLINGS) }
})

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'Dependencies point one way; a cycle makes two rooms one.',
      severity: 'error',
      from: { path: '^(lib|types)/' },
      to: { circular: true }
    },
    {
      name: 'types-are-contracts',
      comment: 'types/ holds the contracts every room meets on; it imports nothing from lib/.',
      severity: 'error',
      from: { path: '^types/' },
      to: { path: '^lib/' }
    },
    {
      name: 'leaves-stay-leaves',
      comment: 'errors, rate, clock, decision and options are leaves: they import only each other and types/.',
      severity: 'error',
      from: { path: '^lib/(errors|rate|clock|decision|options)\\.ts$' },
      to: { path: '^lib/', pathNot: '^lib/(errors|rate|clock|decision|options)\\.ts$' }
    },
    siblings('strategies', 'lib/strategies/', 'Strategies are pure values; they never reach into storage, headers or the throttle.'),
    siblings('backends', 'lib/backends/', 'Backends execute any strategy through types/strategy.ts; they know no strategy, header or throttle.'),
    siblings('headers', 'lib/headers', 'Header writers read a decision; nothing else.'),
    {
      name: 'throttle-below-plugin',
      comment: 'The throttle room works without Fastify glue and without the public entry points.',
      severity: 'error',
      from: { path: '^lib/throttle/' },
      to: { path: below('plugin', 'testing', 'compat', 'index', 'backend\\.ts') }
    },
    {
      name: 'nothing-below-the-public-throttle-imports-it',
      comment: 'Only websocket (above the public class) may import throttle.ts; the core, group, enforce and reservation sit below it.',
      severity: 'error',
      from: { path: '^lib/throttle/', pathNot: '^lib/throttle/(throttle|websocket)\\.ts$' },
      to: { path: '^lib/throttle/(throttle|websocket)\\.ts$' }
    },
    {
      name: 'limit-core-knows-no-group',
      comment: 'The limit core decides one limit; grouping, enforcing and reserving are built on it.',
      severity: 'error',
      from: { path: '^lib/throttle/(contracts|option-types|limit|charges|error-handlers|decision-events|throttle-options|identifier|rules|circuit-breaker|maybe-promise)\\.ts$' },
      to: { path: '^lib/throttle/(limit-group|enforce|reservation)\\.ts$' }
    },
    {
      name: 'group-below-enforce-and-reservation',
      comment: 'The group is the only decider; the hook and reservations use it, never the reverse.',
      severity: 'error',
      from: { path: '^lib/throttle/limit-group\\.ts$' },
      to: { path: '^lib/throttle/(enforce|reservation)\\.ts$' }
    },
    {
      name: 'plugin-below-entry-points',
      comment: 'The Fastify glue does not depend on the public entry points built on it.',
      severity: 'error',
      from: { path: '^lib/plugin/' },
      to: { path: below('testing', 'compat', 'index', 'backend\\.ts') }
    },
    {
      name: 'only-plugin-imports-fastify-at-run-time',
      comment: 'Fastify is a peer; outside the plugin room (its own plugin and the compat plugin) it is used for types only.',
      severity: 'error',
      from: { path: '^lib/', pathNot: '^lib/plugin/' },
      to: { path: 'node_modules/(fastify|fastify-plugin)/', dependencyTypesNot: ['type-only'] }
    },
    {
      name: 'tools-do-not-import-tests',
      comment: 'scripts/ is tooling; tests may use it, not the other way round.',
      severity: 'error',
      from: { path: '^scripts/' },
      to: { path: '^test/' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] }
  }
}
