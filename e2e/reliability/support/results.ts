/**
 * One result file per reliability scenario and mode, rendered into one table by
 * `report.ts`. A scenario writes its figures whether it passed or not, so the table shows
 * what was measured under which conditions; the test itself still fails on a violation.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** `full` under `npm run reliability` (OUTPOST_RELIABILITY=full), `ci` inside `npm test`. */
export type ReliabilityMode = 'full' | 'ci'

/** The mode this run is in. */
export function reliabilityMode(): ReliabilityMode {
  return process.env['OUTPOST_RELIABILITY'] === 'full' ? 'full' : 'ci'
}

/** Picks the full-run or the CI figure for a scenario parameter (seeds, frames, minutes). */
export function scaled<T>(full: T, ci: T): T {
  return reliabilityMode() === 'full' ? full : ci
}

/** What one scenario measured. */
export interface ReliabilityResult {
  /** The table id: N1, S1, S5, S6, L1, D2, B1. */
  readonly id: string
  /** One line: what the scenario does. */
  readonly what: string
  /** The target it is held to, as the issue states it (e.g. "0 divergences"). */
  readonly target: string
  /** Conditions: counts, seeds, durations, machine. */
  readonly conditions: string
  /** The figures, as short human strings keyed by name (e.g. { divergences: '0', seeds: '20' }). */
  readonly figures: Readonly<Record<string, string>>
  /** True when the target held. */
  readonly passed: boolean
  /** Seeds that failed (each replays with OUTPOST_SEED=<seed>). */
  readonly failedSeeds?: readonly number[]
}

/** The directory result files go to. */
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results')

/** Writes `results/<id>.<mode>.json` (overwriting the previous run of the same mode). */
export function recordResult(result: ReliabilityResult): void {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const mode = reliabilityMode()
  const file = join(RESULTS_DIR, `${result.id}.${mode}.json`)
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`
  writeFileSync(file, `${JSON.stringify({ ...result, mode, machine, at: new Date().toISOString() }, null, 2)}\n`)
}
