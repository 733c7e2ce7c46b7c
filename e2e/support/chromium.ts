/**
 * Debian's Chromium, the only browser the suite uses: nothing here may download one.
 * Without it the suite skips with a printed reason, unless OUTPOST_REQUIRE_SERVICES=1
 * (CI), where a missing browser is a failure.
 */
import { existsSync } from 'node:fs'

/** Where Debian installs Chromium (`apt-get install chromium`); OUTPOST_CHROMIUM overrides it. */
export const CHROMIUM_PATH = process.env['OUTPOST_CHROMIUM'] ?? '/usr/bin/chromium'

/** Why the suite cannot run here, or undefined when it can. */
export function chromiumMissingReason(): string | undefined {
  return existsSync(CHROMIUM_PATH) ? undefined : `Chromium not found at ${CHROMIUM_PATH} (install Debian's chromium package or set OUTPOST_CHROMIUM)`
}

/** True when missing services must fail the run instead of skipping it. */
export function servicesRequired(): boolean {
  return process.env['OUTPOST_REQUIRE_SERVICES'] === '1'
}
