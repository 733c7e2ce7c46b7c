/**
 * Builds the demo if needed and starts the relay and the static server on free ports,
 * then publishes where they are through the state file named by OUTPOST_E2E_STATE.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumMissingReason } from './chromium'
import { stopProcess } from './processes'
import { STATE_ENV, buildDemoIfNeeded, startRelay, startWeb, type StackState } from './stack'

/** Playwright's global setup. */
export default async function globalSetup(): Promise<void> {
  // The config already decided to skip (or fail) the run; starting servers would be waste.
  if (chromiumMissingReason() !== undefined) return

  const buildMs = buildDemoIfNeeded()
  console.log(buildMs > 0 ? `[e2e] demo built in ${(buildMs / 1000).toFixed(1)} s` : '[e2e] demo build is up to date')

  const workDir = mkdtempSync(join(tmpdir(), 'outpost-e2e-'))
  const dataDir = join(workDir, 'relay-data')
  mkdirSync(dataDir)
  const relayLog = join(workDir, 'relay.log')
  const webLog = join(workDir, 'web.log')

  const relay = await startRelay({ port: 0, dataDir, logFile: relayLog })
  let web
  try {
    web = await startWeb(webLog)
  } catch (error) {
    stopProcess(relay.pid, 'SIGKILL')
    throw error
  }
  const state: StackState = {
    workDir,
    relay: { pid: relay.pid, port: relay.port, dataDir, logFile: relayLog },
    web: { pid: web.pid, port: web.port, logFile: webLog },
  }
  const stateFile = join(workDir, 'state.json')
  writeFileSync(stateFile, JSON.stringify(state, null, 2))
  // Test workers are forked after the global setup, so they inherit this.
  process.env[STATE_ENV] = stateFile
  console.log(`[e2e] relay ws://127.0.0.1:${relay.port} (pid ${relay.pid}), demo http://127.0.0.1:${web.port}/ (pid ${web.pid}), work dir ${workDir}`)
}
