/**
 * Opens two pages per system, each synced with the same seeded document: the setup shared
 * by the live-write (two tabs) and cross-device (two profiles) workloads.
 */
import type { Page } from 'playwright-core'
import type { SystemPage } from '../pages/api'
import type { BenchContext, ProxiedServer } from './context'
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
    const proxied = context.servers.get(system)
    if (proxied === undefined || 'unavailable' in proxied) {
      unavailable[system] = { unavailable: proxied?.unavailable ?? 'no server' }
      continue
    }
    try {
      const { server, url } = proxied as ProxiedServer
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
