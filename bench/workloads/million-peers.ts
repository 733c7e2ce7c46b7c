/**
 * Which peers can sync N = 1,000,000 records into a browser (quick: 100,000): for Yjs,
 * Automerge-repo and TinyBase in turn, their server (as in workload 1, through the counting
 * proxy) is seeded with N records and a fresh Chromium profile opens the system's bench
 * page and waits until all N are durable and queryable (workload 1's definition), within a
 * cap of 300 s (quick: 90 s). One run each; a system that errs or passes the cap is
 * reported as unable, with the reason. Outpost's own 1,000,000-record figures are workload
 * 7's (`--only million`), against its relay in its own process.
 *
 * By default only Yjs is tried: seeding Automerge-repo's server with 1,000,000 records had
 * not finished after 13 minutes on 2026-12-01 (its seeding holds the harness's event loop, so
 * the cap cannot stop it), and TinyBase did not finish a 100,000-record round within 90 s
 * in the last full run. `OUTPOST_BENCH_MILLION_PEERS=yjs,automerge,tinybase` tries others.
 */
import type { Page } from 'playwright-core'
import { launchDevice } from '../lib/browser'
import { sampleChromium } from '../lib/process-memory'
import type { BenchContext, ProxiedServer } from '../lib/context'
import type { Cell, ResultRow } from '../lib/results'
import { summarize, withTimeout } from '../lib/stats'
import type { SystemPage } from '../pages/api'

const ALL_PEERS = ['yjs', 'automerge', 'tinybase'] as const
type Peer = (typeof ALL_PEERS)[number]
const PEERS: readonly Peer[] = (process.env.OUTPOST_BENCH_MILLION_PEERS ?? 'yjs').split(',').filter((name): name is Peer => (ALL_PEERS as readonly string[]).includes(name))
const NOT_TRIED: Record<Peer, string> = {
  yjs: 'not tried (OUTPOST_BENCH_MILLION_PEERS)',
  automerge: 'not tried: seeding its server with 1,000,000 records had not finished after 13 min (2026-12-01)',
  tinybase: 'not tried: did not finish a 100,000-record round within 90 s (RESULTS.md)',
}

/** Runs the peers' million-record sync. */
export async function millionPeers(context: BenchContext): Promise<ResultRow[]> {
  const n = context.quick ? 100_000 : 1_000_000
  const capMs = context.quick ? 90_000 : 300_000
  const time: Partial<Record<Peer, Cell>> = {}
  const bytes: Partial<Record<Peer, Cell>> = {}
  const memory: Partial<Record<Peer, Cell>> = {}
  for (const system of ALL_PEERS) if (!PEERS.includes(system)) time[system] = { unavailable: NOT_TRIED[system] }
  for (const system of PEERS) {
    const entry = context.servers.get(system)
    if (entry === undefined || 'unavailable' in entry) {
      time[system] = { unavailable: entry === undefined ? 'no server' : entry.unavailable }
      continue
    }
    const proxied: ProxiedServer = entry
    let device: Awaited<ReturnType<typeof launchDevice>> | undefined
    try {
      context.log(`million-peers: seeding ${system} with ${n} records`)
      const doc = await withTimeout(proxied.server.seed(`million${n}`, n), capMs, `${system} seeding ${n}`)
      device = await launchDevice(context.origin)
      const page: Page = await device.open(system)
      const sampler = sampleChromium(device.profile)
      proxied.proxy.reset()
      const ms = await withTimeout(
        page.evaluate(
          async ({ url, doc, n }) => {
            const bench = (globalThis as unknown as { bench: SystemPage }).bench
            const t0 = performance.now()
            await bench.open({ url, db: 'million', doc })
            await bench.waitSynced(n)
            return performance.now() - t0
          },
          { url: proxied.url, doc, n },
        ),
        capMs,
        `${system} N=${n} sync`,
      )
      const peak = sampler.stop()
      const b = proxied.proxy.bytes()
      context.log(`million-peers: ${system} N=${n}: ${ms.toFixed(0)} ms, ${((b.up + b.down) / 2 ** 20).toFixed(1)} MiB, largest renderer ${peak.peakRendererMiB.toFixed(0)} MiB`)
      time[system] = summarize([ms])
      bytes[system] = summarize([(b.up + b.down) / 2 ** 20])
      memory[system] = summarize([peak.peakRendererMiB])
    } catch (error) {
      const why = error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error)
      context.log(`million-peers: ${system} N=${n} could not: ${why}`)
      time[system] = { unavailable: why }
    } finally {
      await device?.close()
    }
  }
  const workload = `7. peers, N=${n.toLocaleString('en')} (1 run, cap ${capMs / 1000} s)`
  return [
    { workload, metric: 'initial sync: server → empty browser, durable + queryable', unit: 'ms', lowerIsBetter: true, cells: time },
    { workload, metric: 'bytes, initial sync, both directions at the socket', unit: 'MiB', lowerIsBetter: true, cells: bytes },
    { workload, metric: 'browser peak RSS during the sync, largest renderer', unit: 'MiB', lowerIsBetter: true, cells: memory },
  ]
}
