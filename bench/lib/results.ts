/**
 * The harness's result model and its markdown table: one row per workload figure, one
 * column per system, plus Outpost ÷ peer and Outpost ÷ raw ratios from the same run.
 */
import type { SystemName } from '../servers/system-server'
import type { Summary } from './stats'

/** A column of the table. */
export type Column = 'raw' | SystemName

/** The columns, in table order. */
export const COLUMNS: readonly Column[] = ['raw', 'outpost', 'tinybase', 'yjs', 'automerge']

/** One cell: a summarized figure, or why there is none. */
export type Cell = Summary | { readonly unavailable: string }

/** One figure of one workload for every column that has it. */
export interface ResultRow {
  /** e.g. "1. initial sync N=10000". */
  readonly workload: string
  /** e.g. "time to durable+queryable". */
  readonly metric: string
  readonly unit: string
  /** Whether a smaller figure is better (ratios above 1 then mean Outpost is slower). */
  readonly lowerIsBetter: boolean
  readonly cells: Partial<Record<Column, Cell>>
  /** What the raw column measures, when it differs from the row's own metric. */
  readonly note?: string
}

/** True when the cell holds a figure. */
export function hasFigure(cell: Cell | undefined): cell is Summary {
  return cell !== undefined && !('unavailable' in cell) && cell.runs > 0
}

/** Builds cells from an `alternate()` outcome. */
export function cellsFrom<K extends Column>(outcome: Map<K, { samples: number[]; error?: string }>, summarize: (values: number[]) => Summary): Partial<Record<Column, Cell>> {
  const cells: Partial<Record<Column, Cell>> = {}
  for (const [column, entry] of outcome) {
    cells[column] = entry.error !== undefined ? { unavailable: entry.error } : summarize(entry.samples)
  }
  return cells
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US')
  if (Math.abs(value) >= 100) return value.toFixed(0)
  if (Math.abs(value) >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

function formatCell(cell: Cell | undefined): string {
  if (cell === undefined) return '—'
  if ('unavailable' in cell) return `not available: ${cell.unavailable.replace(/\|/g, '/')}`
  return `${formatNumber(cell.median)} (${formatNumber(cell.min)}–${formatNumber(cell.max)})`
}

function ratio(a: Cell | undefined, b: Cell | undefined): string {
  if (!hasFigure(a) || !hasFigure(b) || b.median === 0) return '—'
  return `${(a.median / b.median).toFixed(2)}×`
}

/** The markdown table (median (min–max) per cell, then the ratios of medians). */
export function markdownTable(rows: readonly ResultRow[]): string {
  const head = ['workload', 'metric', 'unit', ...COLUMNS, 'Outpost÷raw', 'Outpost÷TinyBase', 'Outpost÷Yjs', 'Outpost÷Automerge']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  for (const row of rows) {
    const c = row.cells
    const metric = row.note === undefined ? row.metric : `${row.metric} (raw: ${row.note})`
    lines.push(
      `| ${[
        row.workload,
        metric,
        `${row.unit}${row.lowerIsBetter ? ' ↓' : ' ↑'}`,
        ...COLUMNS.map((column) => formatCell(c[column])),
        ratio(c.outpost, c.raw),
        ratio(c.outpost, c.tinybase),
        ratio(c.outpost, c.yjs),
        ratio(c.outpost, c.automerge),
      ].join(' | ')} |`,
    )
  }
  return lines.join('\n')
}
