/**
 * Workload 2: local write → live query update, p50/p99, in the same tab and in a second
 * tab of the same browser (Outpost: one SharedWorker; Yjs: y-websocket's BroadcastChannel;
 * TinyBase and Automerge-repo: through their servers, their documented cross-tab path).
 * Beside it, the raw page ↔ SharedWorker postMessage round trip.
 */
import type { Page } from 'playwright-core'
import type { Armed, SystemPage } from '../pages/api'
import type { RawPage } from '../pages/raw'
import { launchDevice } from '../lib/browser'
import type { BenchContext } from '../lib/context'
import type { Cell, Column, ResultRow } from '../lib/results'
import { alternate, quantile, summarize, withTimeout } from '../lib/stats'
import { openSyncedPairs, timedWrite } from '../lib/synced-pairs'

type Bench = { bench: SystemPage & { __armed?: Armed } }
const RECORDS = 1000

/** Same-tab latency measured entirely inside the page (no harness round trip in the timing). */
async function sameTab(page: Page, i: number, rev: number): Promise<number> {
  return page.evaluate(async ({ i, rev }) => {
    const bench = (globalThis as unknown as Bench).bench
    const armed = await bench.watch([i], rev)
    const t0 = performance.timeOrigin + performance.now()
    await bench.write(i, rev)
    return (await armed.done) - t0
  }, { i, rev })
}

/** Runs workload 2. */
export async function liveWrite(context: BenchContext): Promise<ResultRow[]> {
  const writes = context.quick ? 10 : 50
  const device = await launchDevice(context.origin)
  try {
    const rawPage = await device.open('raw')
    // Sub-millisecond figures need the page's 5 µs clock (cross-origin isolated), not the 100 µs one.
    const isolated = await rawPage.evaluate(() => globalThis.crossOriginIsolated)
    if (!isolated) context.log('  live: pages are not cross-origin isolated: performance.now() is coarsened to 100 µs')
    const { pairs: tabs, columns: systemColumns, unavailable } = await openSyncedPairs(context, 'live', RECORDS, (system) => device.open(system))
    const columns: Column[] = ['raw', ...systemColumns]
    let rev = 1
    const p = { same50: new Map<Column, number[]>(), same99: new Map<Column, number[]>(), tab50: new Map<Column, number[]>(), tab99: new Map<Column, number[]>() }
    const push = (m: Map<Column, number[]>, c: Column, v: number): void => void m.set(c, [...(m.get(c) ?? []), v])
    const outcome = await alternate(columns, context.repeats, async (column, round) => {
      const same: number[] = []
      const tab: number[] = []
      if (column === 'raw') {
        same.push(...(await rawPage.evaluate(async (count) => (globalThis as unknown as { raw: RawPage }).raw.echo(count), writes)))
      } else {
        const [a, b] = tabs.get(column) as [Page, Page]
        for (let k = 0; k < writes; k++) {
          const i = (k * 37) % RECORDS
          same.push(await withTimeout(sameTab(a, i, rev++), 30_000, `${column} same-tab write`))
          tab.push(await withTimeout(timedWrite(a, b, i, rev++), 30_000, `${column} second-tab write`))
        }
      }
      if (round >= context.repeats.warmup) {
        push(p.same50, column, quantile(same, 0.5))
        push(p.same99, column, quantile(same, 0.99))
        if (tab.length > 0) {
          push(p.tab50, column, quantile(tab, 0.5))
          push(p.tab99, column, quantile(tab, 0.99))
        }
      }
      context.log(`  live ${column} round ${round}: same-tab p50 ${quantile(same, 0.5).toFixed(2)} ms${tab.length > 0 ? `, second tab p50 ${quantile(tab, 0.5).toFixed(2)} ms` : ''}`)
      return quantile(same, 0.5)
    })
    const cells = (m: Map<Column, number[]>): Partial<Record<Column, Cell>> => {
      const out: Partial<Record<Column, Cell>> = { ...unavailable }
      for (const [column, entry] of outcome) {
        if (entry.error !== undefined) out[column] = { unavailable: entry.error }
        else if (m.has(column)) out[column] = summarize(m.get(column) ?? [])
      }
      return out
    }
    const note = 'page↔SharedWorker postMessage round trip'
    return [
      { workload: '2. local write → live query, same tab', metric: 'p50', unit: 'ms', lowerIsBetter: true, cells: cells(p.same50), note },
      { workload: '2. local write → live query, same tab', metric: 'p99', unit: 'ms', lowerIsBetter: true, cells: cells(p.same99), note },
      { workload: '2. local write → live query, second tab', metric: 'p50', unit: 'ms', lowerIsBetter: true, cells: { ...cells(p.tab50), raw: cells(p.same50).raw as Cell }, note },
      { workload: '2. local write → live query, second tab', metric: 'p99', unit: 'ms', lowerIsBetter: true, cells: { ...cells(p.tab99), raw: cells(p.same99).raw as Cell }, note },
    ]
  } finally {
    await device.close()
  }
}
