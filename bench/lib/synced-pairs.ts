/**
 * Opens two pages per system, each synced with the same seeded document: the setup shared
 * by the live-write (two tabs) and cross-device (two profiles) workloads.
 */
import type { Page } from 'playwright-core'
import type { Armed, SystemPage } from '../pages/api'
import { serverFor, type BenchContext } from './context'
import type { Cell, Column } from './results'
import { withTimeout } from './stats'
import { SYSTEMS, type SystemName } from '../servers/system-server'

/** Pages ready per system, and why the others are not available. */
export interface SyncedPairs {
  readonly pairs: Map<Column, [Page, Page]>
  readonly columns: Column[]
  readonly unavailable: Partial<Record<Column, Cell>>
}

/**
 * Seeds `records` records under `name` on each system's server, then opens two pages with
 * `open(system, index)` and waits until both hold them. A system that fails is reported as
 * unavailable with its first error line, not thrown.
 */
export async function openSyncedPairs(
  context: BenchContext,
  name: string,
  records: number,
  open: (system: SystemName, index: 0 | 1) => Promise<Page>,
): Promise<SyncedPairs> {
  const pairs = new Map<Column, [Page, Page]>()
  const columns: Column[] = []
  const unavailable: Partial<Record<Column, Cell>> = {}
  for (const system of SYSTEMS) {
    const proxied = serverFor(context, system, unavailable)
    if (proxied === undefined) continue
    try {
      const { server, url } = proxied
      const doc = await server.seed(`${name}${records}`, records)
      const pair: Page[] = []
      for (const index of [0, 1] as const) {
        const page = await open(system, index)
        await withTimeout(page.evaluate(async ({ url, db, doc, n }) => {
          const bench = (globalThis as unknown as { bench: SystemPage }).bench
          await bench.open({ url, db, doc })
          await bench.waitSynced(n)
        }, { url, db: `bench-${name}-${system}`, doc, n: records }), 120_000, `${system} setup`)
        pair.push(page)
      }
      pairs.set(system, pair as [Page, Page])
      columns.push(system)
    } catch (error) {
      unavailable[system] = { unavailable: error instanceof Error ? error.message.split('\n')[0] ?? 'failed' : String(error) }
    }
  }
  return { pairs, columns, unavailable }
}

/**
 * One write of record `i` (revision `rev`) in `writer`, observed in `watcher` (another tab,
 * another profile, or the same page): ms from just before the write to the watcher seeing it.
 */
export async function timedWrite(writer: Page, watcher: Page, i: number, rev: number): Promise<number> {
  type Bench = { bench: SystemPage & { __armed?: Armed } }
  await watcher.evaluate(async ({ i, rev }) => {
    const g = globalThis as unknown as Bench
    g.bench.__armed = await g.bench.watch([i], rev)
  }, { i, rev })
  const t0 = await writer.evaluate(async ({ i, rev }) => {
    const t = performance.timeOrigin + performance.now()
    await (globalThis as unknown as Bench).bench.write(i, rev)
    return t
  }, { i, rev })
  const at = await watcher.evaluate(async () => (globalThis as unknown as Bench).bench.__armed?.done ?? Number.NaN)
  return at - t0
}
