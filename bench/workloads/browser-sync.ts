/**
 * Workloads 1, 4, 5 and 7, measured in one round per system so each builds on the last:
 * 1. initial sync of N records from the server into an empty browser (durable + queryable),
 * 4. reconnect after offline with 100 records changed on the server,
 * 5. cold start: page load → first query result with those N records local,
 * 7. bytes on the wire for 1 and 4 (counted at the proxy in front of each server).
 * Raw IndexedDB (one-transaction put of N, then getAll) runs in the same alternation.
 */
import type { Page } from 'playwright-core'
import type { Armed, SystemPage } from '../pages/api'
import { launchDevice, type Device } from '../lib/browser'
import { serverFor, type BenchContext, type ProxiedServer } from '../lib/context'
import { cellsFrom, type Cell, type Column, type ResultRow } from '../lib/results'
import { alternate, summarize, withTimeout } from '../lib/stats'
import { SYSTEMS, type SystemName } from '../servers/system-server'

/** Records changed on the server while the client is offline (workload 4). */
const CHANGED = 100

interface RoundFigures {
  syncMs: number
  syncKiB: number
  reconnectMs: number
  reconnectKiB: number
  coldMs: number
}

type Bench = { bench: SystemPage & { __armed?: Armed } }

async function syncRound(device: Device, system: SystemName, proxied: ProxiedServer, doc: string, n: number, db: string, rev: number): Promise<RoundFigures> {
  const { proxy, server, url } = proxied
  const page: Page = await device.open(system)
  proxy.reset()
  const syncMs = await page.evaluate(
    async ({ url, db, doc, n }) => {
      const bench = (globalThis as unknown as Bench).bench
      const t0 = performance.now()
      await bench.open({ url, db, doc })
      await bench.waitSynced(n)
      return performance.now() - t0
    },
    { url, db, doc, n },
  )
  const syncBytes = proxy.bytes()

  // Workload 4: offline, the server changes CHANGED records, reconnect until all are visible.
  const indexes = Array.from({ length: CHANGED }, (_, k) => Math.floor((k * n) / CHANGED))
  await page.evaluate(async ({ indexes, rev }) => {
    const g = globalThis as unknown as Bench
    await g.bench.offline()
    g.bench.__armed = await g.bench.watch(indexes, rev)
  }, { indexes, rev })
  await new Promise((resolve) => setTimeout(resolve, 200))
  await server.change(doc, indexes, rev)
  proxy.reset()
  const reconnectMs = await page.evaluate(async () => {
    const g = globalThis as unknown as Bench
    const t0 = performance.timeOrigin + performance.now()
    await g.bench.online()
    const at = await (g.bench.__armed as Armed).done
    return at - t0
  })
  // Let the last frames (acks, awareness, sync replies) cross the proxy before reading it.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const reconnectBytes = proxy.bytes()
  await page.evaluate(async () => (globalThis as unknown as Bench).bench.close())
  await page.close()
  // Give a SharedWorker with no documents left time to stop, so the next load is cold.
  await new Promise((resolve) => setTimeout(resolve, 500))

  // Workload 5: page load → first query result, offline, from what is local.
  const cold = await device.context.newPage()
  const started = Date.now()
  await cold.goto(`${device.origin}/${system}.html`)
  await cold.waitForFunction('globalThis.bench !== undefined')
  const coldMs = await cold.evaluate(async ({ db, doc }) => {
    const bench = (globalThis as unknown as Bench).bench
    const loaded = (globalThis as unknown as { benchLoadedAt: number }).benchLoadedAt
    const t0 = performance.now()
    await bench.open({ url: null, db, doc })
    const rows = await bench.firstQuery()
    if (rows === 0) throw new Error('cold start: the first query returned no rows')
    return loaded + (performance.now() - t0)
  }, { db, doc })
  if (Date.now() - started > 120_000) throw new Error('cold start took over 2 minutes')
  await cold.evaluate(async () => (globalThis as unknown as Bench).bench.close())
  await cold.close()
  return {
    syncMs,
    syncKiB: (syncBytes.up + syncBytes.down) / 1024,
    reconnectMs,
    reconnectKiB: (reconnectBytes.up + reconnectBytes.down) / 1024,
    coldMs,
  }
}

/** Runs workloads 1, 4, 5 and 7 for every N. */
export async function browserSync(context: BenchContext): Promise<ResultRow[]> {
  const sizes = context.quick ? [1_000] : [10_000, 100_000]
  const rows: ResultRow[] = []
  let rev = 1
  for (const n of sizes) {
    const docs = new Map<SystemName, string>()
    const columns: Column[] = ['raw']
    const unavailable: Partial<Record<Column, Cell>> = {}
    for (const system of SYSTEMS) {
      const proxied = serverFor(context, system, unavailable)
      if (proxied === undefined) continue
      try {
        context.log(`  seeding ${system} with ${n} records`)
        docs.set(system, await proxied.server.seed(`items${n}`, n))
        columns.push(system)
      } catch (error) {
        unavailable[system] = { unavailable: `seeding failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` }
      }
    }
    const figures = new Map<Column, RoundFigures[]>()
    const rawGetAll: number[] = []
    const outcome = await alternate(columns, context.repeats, async (column, round) => {
      const device = await launchDevice(context.origin)
      try {
        const db = `bench-${column}-${n}-${round}`
        if (column === 'raw') {
          const page = await device.open('raw')
          const r = await page.evaluate(async ({ n, db }) => (globalThis as unknown as { raw: import('../pages/raw').RawPage }).raw.idb(n, db), { n, db })
          if (round >= context.repeats.warmup) rawGetAll.push(r.getAllMs)
          context.log(`  raw idb N=${n} round ${round}: put ${r.putMs.toFixed(0)} ms, getAll ${r.getAllMs.toFixed(0)} ms`)
          return r.putMs
        }
        const proxied = context.servers.get(column) as ProxiedServer
        const f = await withTimeout(syncRound(device, column, proxied, docs.get(column) as string, n, db, rev++), n > 10_000 ? 90_000 : 240_000, `${column} N=${n} round`)
        context.log(`  ${column} N=${n} round ${round}: sync ${f.syncMs.toFixed(0)} ms / ${f.syncKiB.toFixed(0)} KiB, reconnect ${f.reconnectMs.toFixed(0)} ms / ${f.reconnectKiB.toFixed(1)} KiB, cold ${f.coldMs.toFixed(0)} ms`)
        if (round >= context.repeats.warmup) figures.set(column, [...(figures.get(column) ?? []), f])
        return f.syncMs
      } finally {
        await device.close()
      }
    })
    const pick = (key: keyof RoundFigures): Partial<Record<Column, Cell>> => {
      const cells: Partial<Record<Column, Cell>> = { ...unavailable }
      for (const system of SYSTEMS) {
        const entry = outcome.get(system)
        if (entry?.error !== undefined) cells[system] = { unavailable: entry.error }
        else if (figures.has(system)) cells[system] = summarize((figures.get(system) ?? []).map((f) => f[key]))
      }
      return cells
    }
    const syncCells = { ...unavailable, ...cellsFrom(outcome, summarize) }
    rows.push({ workload: `1. initial sync N=${n}`, metric: 'server → empty browser, durable + queryable', unit: 'ms', lowerIsBetter: true, cells: syncCells, note: `one-tx put of ${n}` })
    rows.push({ workload: `7. bytes, initial sync N=${n}`, metric: 'both directions at the socket', unit: 'KiB', lowerIsBetter: true, cells: pick('syncKiB') })
    rows.push({ workload: `4. reconnect ${CHANGED} of ${n} changed`, metric: 'online → all changes visible', unit: 'ms', lowerIsBetter: true, cells: pick('reconnectMs') })
    rows.push({ workload: `7. bytes, reconnect ${CHANGED} of ${n}`, metric: 'both directions at the socket', unit: 'KiB', lowerIsBetter: true, cells: pick('reconnectKiB') })
    rows.push({
      workload: `5. cold start N=${n} local`,
      metric: 'page load → first query result (group = 7, 100 rows)',
      unit: 'ms',
      lowerIsBetter: true,
      cells: { ...pick('coldMs'), ...(rawGetAll.length > 0 ? { raw: summarize(rawGetAll) } : {}) },
      note: `getAll of ${n}`,
    })
  }
  return rows
}
