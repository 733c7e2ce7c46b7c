import { defineConfig } from 'vitest/config'

/**
 * One vitest project per package. Each package keeps its tests in `test/`; browser
 * scenarios live in `e2e/` (Playwright) and are run by `npm run test:e2e`.
 */
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'core', root: './packages/core', include: ['test/**/*.test.ts'], testTimeout: 120_000 } },
      { test: { name: 'worker', root: './packages/worker', include: ['test/**/*.test.ts'], testTimeout: 60_000 } },
      { test: { name: 'client', root: './packages/client', include: ['test/**/*.test.ts', 'test/**/*.test.tsx'], testTimeout: 60_000 } },
      { test: { name: 'demo-app', root: './demo-app', include: ['test/**/*.test.ts'] } },
      { test: { name: 'server-lite', root: './packages/server-lite', include: ['test/**/*.test.ts'], testTimeout: 120_000 } },
    ],
    typecheck: { enabled: false },
  },
})
