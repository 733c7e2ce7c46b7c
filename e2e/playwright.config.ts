/**
 * Outpost's end-to-end suite: real Chromium (Debian's, never a downloaded one), the real
 * relay and the built demo, each on a free 127.0.0.1 port (see support/global-setup.ts).
 *
 *   npm run test --workspace e2e            # the whole suite
 *   npm run test --workspace e2e -- offline # one scenario
 */
import { defineConfig } from '@playwright/test'
import { CHROMIUM_PATH, chromiumMissingReason, servicesRequired } from './support/chromium'

const missing = chromiumMissingReason()
if (missing !== undefined) {
  if (servicesRequired()) throw new Error(`OUTPOST_REQUIRE_SERVICES=1 but ${missing}`)
  console.log(`[e2e] skipping the browser scenarios: ${missing}`)
}

export default defineConfig({
  testDir: '.',
  // Without the browser nothing runs (the test script passes --pass-with-no-tests for this).
  testMatch: missing === undefined ? '*.spec.ts' : [],
  outputDir: './test-results',
  globalSetup: './support/global-setup.ts',
  globalTeardown: './support/global-teardown.ts',
  // A 2-core machine: one browser at a time, and a failure is a failure (no retries).
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  reporter: 'list',
  timeout: 90_000,
  // Waits on events (a change arriving, a state shown) are bounds that should catch only a
  // hang: a loaded 2-core machine took over 15 s to deliver some of them.
  expect: { timeout: 30_000 },
  use: {
    browserName: 'chromium',
    headless: true,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    actionTimeout: 15_000,
    navigationTimeout: 30_000,
    launchOptions: {
      executablePath: CHROMIUM_PATH,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    },
  },
})
