#!/usr/bin/env node
// `npm run reliability`: the reliability suite's long variants, then one table.
//
//   1. the Node scenarios (vitest project `reliability`: N1, S1, S5, S6, L1, L2, C1, M1) with
//      OUTPOST_RELIABILITY=full;
//   2. the browser scenarios (Playwright specs under e2e/reliability/: D2, B1), same mode;
//   3. e2e/reliability/report.ts: prints the table (id, what, target, figures, conditions,
//      pass) and writes e2e/reliability/RESULTS.md.
//
// Every step runs even when an earlier one failed, so the table always prints; the exit
// code is non-zero when any step or any recorded scenario failed. Extra arguments go to
// vitest (e.g. `npm run reliability -- n1` runs only N1's file, then the report).
// A full run takes hours on a 2-core machine; see e2e/reliability/README.md for each
// scenario's knobs (OUTPOST_N1_SEEDS, OUTPOST_L1_MINUTES, ...) and for replaying a seed.
import { spawnSync } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const env = { ...process.env, OUTPOST_RELIABILITY: 'full' }
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const filters = process.argv.slice(2)

/** Runs one step with inherited output; returns its exit status (1 when it could not start). */
function step(name, command, args) {
  console.log(`\n[reliability] ${name}: ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { cwd: root, env, stdio: 'inherit' })
  if (result.error !== undefined) console.error(`[reliability] ${name} could not start: ${result.error.message}`)
  const status = result.status ?? 1
  console.log(`[reliability] ${name}: ${status === 0 ? 'ok' : `failed (exit ${status})`}`)
  return status
}

const statuses = [
  step('node scenarios', npx, ['vitest', 'run', '--project', 'reliability', ...filters]),
  // Only when no filter narrowed the run to some Node scenarios.
  ...(filters.length === 0 ? [step('browser scenarios', npm, ['run', 'test', '--workspace', 'e2e', '--', 'reliability/'])] : []),
  step('report', process.execPath, ['--import', 'tsx', join(root, 'e2e', 'reliability', 'report.ts')]),
]
process.exitCode = statuses.some((status) => status !== 0) ? 1 : 0
