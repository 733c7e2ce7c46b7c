import { defineConfig } from 'vitest/config'
import { sourceResolution } from './scripts/source-conditions.ts'

/**
 * One vitest project per package. Each package keeps its tests in `test/`; browser
 * scenarios live in `e2e/` (Playwright) and are run by `npm run test:e2e`. Every project
 * resolves the workspace packages to their TypeScript source (see scripts/source-conditions.ts),
 * so no build is needed before the tests.
 */
export default defineConfig({
  ...sourceResolution,
  test: {
    projects: [
      { extends: true, test: { name: 'core', root: './packages/core', include: ['test/**/*.test.ts'], testTimeout: 120_000 } },
      { extends: true, test: { name: 'worker', root: './packages/worker', include: ['test/**/*.test.ts'], testTimeout: 60_000 } },
      { extends: true, test: { name: 'client', root: './packages/client', include: ['test/**/*.test.ts', 'test/**/*.test.tsx'], testTimeout: 60_000 } },
      { extends: true, test: { name: 'demo-app', root: './demo-app', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'server-lite', root: './packages/server-lite', include: ['test/**/*.test.ts'], testTimeout: 120_000 } },
      // Short variants of the reliability scenarios (`npm run reliability` runs them long), one
      // file at a time so one scenario's load never lands in another's figures.
      { extends: true, test: { name: 'reliability', root: './e2e/reliability', include: ['**/*.test.ts'], testTimeout: 600_000, hookTimeout: 120_000, fileParallelism: false } },
    ],
    typecheck: { enabled: false },
  },
})
