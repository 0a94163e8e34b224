import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));

export default defineConfig({
  // Tests run the packages' TypeScript sources: package names resolve to them here, as they do in
  // tsconfig.json. Processes a test starts (the CLI, the benchmark's peers) run the built dist/.
  resolve: {
    alias: [
      { find: /^@herald\/protocol\/schemas$/, replacement: src('protocol/src/schemas.ts') },
      { find: /^@herald\/protocol$/, replacement: src('protocol/src/index.ts') },
      { find: /^@herald\/client$/, replacement: src('client/src/index.ts') },
      { find: /^@herald\/server$/, replacement: src('server-sdk/src/index.ts') },
      { find: /^herald\/internal\/(.*)\.js$/, replacement: `${src('server/src')}/$1.ts` },
      { find: /^herald$/, replacement: src('server/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most suites wait on sockets, engines and child processes rather than on CPU: on the 2-core
    // CI machine two files at a time finish the suite in well under the serial time (vitest's own
    // default there would be one).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    reporters: ['default'],
  },
});
