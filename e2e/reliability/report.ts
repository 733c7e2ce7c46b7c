/**
 * The reliability table: reads `results/*.json` (a full run's result preferred over a CI
 * one for the same id), prints one table in a fixed order (N1 S1 S5 S6 L1 L2 D2 B1 C1, "not
 * run" for missing ones) and writes it to `RESULTS.md` beside this file.
 *
 *   node --import tsx e2e/reliability/report.ts      # what `npm run reliability` runs last
 *
 * Exits 1 when a recorded scenario failed (a missing one is shown, not counted as failed).
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { RESULTS_DIR, type ReliabilityResult } from './support/results'

/** The table's rows, in order. */
export const SCENARIO_ORDER = ['N1', 'S1', 'S5', 'S6', 'L1', 'L2', 'D2', 'B1', 'C1'] as const

/** A result file as `recordResult` writes it. */
export interface StoredResult extends ReliabilityResult {
  readonly mode: 'full' | 'ci'
  readonly machine: string
  readonly at: string
}

/** Every result in `dir`, one per id (full over CI, then the newest). */
export function readResults(dir: string = RESULTS_DIR): Map<string, StoredResult> {
  const out = new Map<string, StoredResult>()
  if (!existsSync(dir)) return out
  for (const file of readdirSync(dir)) {
    if (!/^[A-Za-z0-9_-]+\.(full|ci)\.json$/.test(file)) continue
    let result: StoredResult
    try {
      result = JSON.parse(readFileSync(join(dir, file), 'utf8')) as StoredResult
    } catch (error) {
      console.error(`report: skipping ${file}: ${error instanceof Error ? error.message : String(error)}`)
      continue
    }
    const known = out.get(result.id)
    const better = known === undefined || (result.mode === 'full' && known.mode !== 'full') || (result.mode === known.mode && result.at > known.at)
    if (better) out.set(result.id, result)
  }
  return out
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

/** The table as Markdown. */
export function renderTable(results: ReadonlyMap<string, StoredResult>): string {
  const ids = [...SCENARIO_ORDER, ...[...results.keys()].filter((id) => !(SCENARIO_ORDER as readonly string[]).includes(id)).sort()]
  const lines = ['| id | what | target | figures | conditions | pass |', '|---|---|---|---|---|---|']
  for (const id of ids) {
    const r = results.get(id)
    if (r === undefined) {
      lines.push(`| ${id} | — | — | — | — | not run |`)
      continue
    }
    const figures = Object.entries(r.figures)
      .map(([name, value]) => `${name}: ${value}`)
      .join('; ')
    const failed = r.failedSeeds !== undefined && r.failedSeeds.length > 0 ? ` (failed seeds: ${r.failedSeeds.slice(0, 10).join(', ')}${r.failedSeeds.length > 10 ? ', …' : ''})` : ''
    const conditions = `${r.conditions} [${r.mode} run, ${r.machine}, ${r.at.slice(0, 16).replace('T', ' ')} UTC]`
    lines.push(`| ${id} | ${cell(r.what)} | ${cell(r.target)} | ${cell(figures)} | ${cell(conditions)} | ${r.passed ? 'yes' : `NO${failed}`} |`)
  }
  return `${lines.join('\n')}\n`
}

/** Prints the table, writes RESULTS.md, returns how many recorded scenarios failed. */
export function report(dir: string = RESULTS_DIR, out: string = join(dir, '..', 'RESULTS.md')): number {
  const results = readResults(dir)
  const table = renderTable(results)
  console.log(table)
  writeFileSync(
    out,
    `# Reliability results\n\nWritten by \`e2e/reliability/report.ts\` (\`npm run reliability\`) from \`results/*.json\`; a full run's result is shown where there is one, otherwise the CI variant's. See README.md for what each scenario proves and how to replay a seed.\n\n${table}`,
  )
  return [...results.values()].filter((r) => !r.passed).length
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const failed = report()
  if (failed > 0) {
    console.error(`${failed} scenario(s) failed`)
    process.exitCode = 1
  }
}
