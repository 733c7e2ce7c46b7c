/**
 * Workload 3: write in browser A → visible in browser B through the server, p50/p99. A and
 * B are separate Chromium profiles (separate storage), both connected through the proxies.
 */
import type { Page } from 'playwright-core'
import { launchDevice, type Device } from '../lib/browser'
import type { BenchContext } from '../lib/context'
import type { Cell, Column, ResultRow } from '../lib/results'
import { alternate, quantile, summarize, withTimeout } from '../lib/stats'
import { openSyncedPairs, timedWrite } from '../lib/synced-pairs'

const RECORDS = 1000

/** Runs workload 3. */
export async function crossDevice(context: BenchContext): Promise<ResultRow[]> {
  const writes = context.quick ? 10 : 50
  const devices: Device[] = [await launchDevice(context.origin), await launchDevice(context.origin)]
  try {
    const { pairs, columns, unavailable } = await openSyncedPairs(context, 'cross', RECORDS, (system, index) => (devices[index] as Device).open(system))
    let rev = 1
    const p50 = new Map<Column, number[]>()
    const p99 = new Map<Column, number[]>()
    const outcome = await alternate(columns, context.repeats, async (column, round) => {
      const [a, b] = pairs.get(column) as [Page, Page]
      const samples: number[] = []
      for (let k = 0; k < writes; k++) {
        const i = (k * 53) % RECORDS
        const r = rev++
        samples.push(await withTimeout(timedWrite(a, b, i, r), 30_000, `${column} cross-device write`))
      }
      if (round >= context.repeats.warmup) {
        p50.set(column, [...(p50.get(column) ?? []), quantile(samples, 0.5)])
        p99.set(column, [...(p99.get(column) ?? []), quantile(samples, 0.99)])
      }
      context.log(`  cross-device ${column} round ${round}: p50 ${quantile(samples, 0.5).toFixed(1)} ms, p99 ${quantile(samples, 0.99).toFixed(1)} ms`)
      return quantile(samples, 0.5)
    })
    const cells = (m: Map<Column, number[]>): Partial<Record<Column, Cell>> => {
      const out: Partial<Record<Column, Cell>> = { ...unavailable }
      for (const [column, entry] of outcome) {
        if (entry.error !== undefined) out[column] = { unavailable: entry.error }
        else if (m.has(column)) out[column] = summarize(m.get(column) ?? [])
      }
      return out
    }
    return [
      { workload: '3. cross-device A → server → B', metric: 'p50', unit: 'ms', lowerIsBetter: true, cells: cells(p50) },
      { workload: '3. cross-device A → server → B', metric: 'p99', unit: 'ms', lowerIsBetter: true, cells: cells(p99) },
    ]
  } finally {
    for (const device of devices) await device.close()
  }
}
