/**
 * Stops exactly the PIDs the state file names (the relay may have been restarted by a
 * spec, which rewrote the file), keeps the logs next to the test results and removes
 * the temp work dir with the relay's data.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { stopGracefully } from './processes'
import { RESULTS_DIR, STATE_ENV, readState } from './stack'

/** Playwright's global teardown. */
export default async function globalTeardown(): Promise<void> {
  if (process.env[STATE_ENV] === undefined) return // the setup started nothing
  const state = readState()
  await Promise.all([stopGracefully(state.relay.pid), stopGracefully(state.web.pid)])
  mkdirSync(join(RESULTS_DIR, 'logs'), { recursive: true })
  for (const [name, file] of [
    ['relay.log', state.relay.logFile],
    ['web.log', state.web.logFile],
  ] as const) {
    if (existsSync(file)) copyFileSync(file, join(RESULTS_DIR, 'logs', name))
  }
  rmSync(state.workDir, { recursive: true, force: true })
}
