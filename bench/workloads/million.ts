/**
 * Workload 7: a map of N = 1,000,000 records (quick: 100,000) held by the relay (its CLI,
 * its own process, on LMDB), on 127.0.0.1, then Outpost itself in Chromium at 10,000,
 * 100,000 and 1,000,000 records (quick: 10,000 and 100,000), one relay per size:
 * - relay RSS with the N records stored, idle (after start, one hello);
 * - a fresh Node protocol client subscribes to the whole map with flow control (window
 *   4 MiB, credit as it applies frames) and receives every record: time, records/s,
 *   bytes, the relay's peak RSS while streaming (sampled every 100 ms), and the client's
 *   peak heap (it keeps only a count, as a device that writes pages as they come would).
 * - Outpost in Chromium (the bench page: `@outpost/client`, SharedWorker, IndexedDB on
 *   disk) through the counting proxy: open → every record durable and queryable (as in
 *   workload 1), bytes both ways, the relay's peak RSS, and the browser's peak RSS (the sum
 *   over its processes, and its largest renderer, which hosts the SharedWorker), sampled
 *   every 200 ms; then a cold start offline on the same profile (workload 5's first query).
 *   One run per size (a 1,000,000-record round takes minutes); peers are not run here (see
 *   RESULTS.md for which could and could not).
 * The records are planted straight into the relay's store (the seeding is not measured),
 * the same ~200 B records as every other workload.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import { PROTOCOL_VERSIONS, decodeServerMessage, encodeMessage, lwwSetState, type ClientMessage, type LwwRecordState, type ReplicaId, type Stamp } from '@outpost/core'
import { LmdbStore } from '@outpost/server-lite'
import type { BenchContext } from '../lib/context'
import { makeRecord } from '../lib/data'
import type { ResultRow } from '../lib/results'
import { summarize } from '../lib/stats'
import { launchDevice } from '../lib/browser'
import { startCountingProxy } from '../lib/counting-proxy'
import { rssAnonKiB, rssKiB, sampleChromium } from '../lib/process-memory'
import type { SystemPage } from '../pages/api'
import { NODE_SOURCE_FLAGS } from '../../scripts/source-conditions'

const WINDOW = 4 * 1024 * 1024


/** Plants `n` records into the LMDB store at `dir` (as the relay stores them), in large transactions. */
export async function plant(dir: string, n: number): Promise<void> {
  const store = LmdbStore.open({ path: dir })
  const stamp = (i: number): Stamp => `${(1_700_000_000_000 + i).toString(36).padStart(10, '0')}-0000-seed` as Stamp
  for (let i = 0; i < n; i += 20_000) {
    await store.applyWrites(
      Array.from({ length: Math.min(20_000, n - i) }, (_, j) => {
        const record = makeRecord(i + j)
        const state = lwwSetState(record as never, stamp(2 * (i + j)), stamp(2 * (i + j) + 1)) as LwwRecordState
        return { map: 'items', kind: 'lww' as const, key: record.id, decide: () => ({ state }) }
      }),
    )
  }
  await store.close()
}

/** Starts the relay CLI over `dir`, with the extra Node flags of `OUTPOST_BENCH_RELAY_FLAGS` (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
export async function startRelay(root: string, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const extra = (process.env['OUTPOST_BENCH_RELAY_FLAGS'] ?? '').split(' ').filter((flag) => flag !== '')
  const child = spawn(process.execPath, [...NODE_SOURCE_FLAGS, ...extra, join(root, 'packages/server-lite/src/cli.ts'), '--port', '0', '--data-dir', dir, '--log-level', 'info'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  const guard = (): void => void child.kill('SIGKILL')
  process.once('exit', guard)
  child.once('exit', () => process.off('exit', guard))
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the relay did not report a port in 60 s')), 60_000)
    child.once('exit', (code) => reject(new Error(`the relay exited with ${code}`)))
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as { port?: unknown; msg?: unknown }
        if (parsed.msg === 'listening' && typeof parsed.port === 'number') {
          clearTimeout(timer)
          resolve(parsed.port)
        }
      } catch {
        // Not a JSON log line.
      }
    })
  })
  return { child, port }
}

/** Subscribes to the whole map with credit-based flow control; resolves with what arrived, the total time and the time from `subscribe` to the first frame. */
export async function stream(port: number, replicaId = 'bench-million'): Promise<{ records: number; bytes: number; ms: number; firstMs: number; peakHeapMiB: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  const send = (message: ClientMessage): void => socket.send(encodeMessage(message))
  let records = 0
  let bytes = 0
  let peakHeap = 0
  let subscribedAt = 0
  let firstMs = -1
  const started = performance.now()
  const done = new Promise<void>((resolve, reject) => {
    socket.on('message', (data: Buffer) => {
      bytes += data.length
      const message = decodeServerMessage(new Uint8Array(data.buffer, data.byteOffset, data.length))
      if (message.type === 'welcome') {
        subscribedAt = performance.now()
        send({ type: 'subscribe', sub: 1, shape: { map: 'items' } })
      } else if (message.type === 'changes') {
        if (firstMs < 0) firstMs = performance.now() - subscribedAt
        records += message.changes.length
        if (message.paced === true) send({ type: 'credit', bytes: data.length })
        if (records % 100_000 < message.changes.length) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
      } else if (message.type === 'synced') resolve()
      else if (message.type === 'error') reject(new Error(JSON.stringify(message.error)))
    })
    socket.once('close', () => reject(new Error('the relay closed the connection')))
  })
  send({ type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: replicaId as ReplicaId, clientTime: Date.now(), window: WINDOW })
  await done
  const ms = performance.now() - started
  socket.removeAllListeners('close')
  socket.close()
  return { records, bytes, ms, firstMs, peakHeapMiB: peakHeap / 1024 / 1024 }
}

/** Figures of one Outpost round in Chromium. */
interface BrowserRound {
  syncMs: number
  syncMiB: number
  relayPeakMiB: number
  browserPeakMiB: number
  rendererPeakMiB: number
  coldMs: number
}

/** Outpost in Chromium against the relay on `port` (pid `relayPid`) holding `n` records of map `items`. */
async function outpostInChromium(context: BenchContext, port: number, relayPid: number, n: number): Promise<BrowserRound> {
  const proxy = await startCountingProxy(port)
  const device = await launchDevice(context.origin)
  type Bench = { bench: SystemPage }
  try {
    const page = await device.open('outpost')
    let relayPeak = await rssKiB(relayPid)
    const relaySampler = setInterval(() => void rssKiB(relayPid).then((kib) => (relayPeak = Math.max(relayPeak, kib || 0))), 200)
    const browser = sampleChromium(device.profile)
    proxy.reset()
    const syncMs = await page.evaluate(
      async ({ url, n }) => {
        const bench = (globalThis as unknown as Bench).bench
        const t0 = performance.now()
        await bench.open({ url, db: 'million', doc: 'items' })
        await bench.waitSynced(n)
        return performance.now() - t0
      },
      { url: proxy.url(), n },
    )
    clearInterval(relaySampler)
    const memory = browser.stop()
    const bytes = proxy.bytes()
    await page.evaluate(async () => (globalThis as unknown as Bench).bench.close())
    await page.close()
    await new Promise((resolve) => setTimeout(resolve, 500))
    const cold = await device.context.newPage()
    await cold.goto(`${device.origin}/outpost.html`)
    await cold.waitForFunction('globalThis.bench !== undefined')
    const coldMs = await cold.evaluate(async () => {
      const bench = (globalThis as unknown as Bench).bench
      const loaded = (globalThis as unknown as { benchLoadedAt: number }).benchLoadedAt
      const t0 = performance.now()
      await bench.open({ url: null, db: 'million', doc: 'items' })
      const rows = await bench.firstQuery()
      if (rows === 0) throw new Error('cold start: the first query returned no rows')
      return loaded + (performance.now() - t0)
    })
    await cold.evaluate(async () => (globalThis as unknown as Bench).bench.close())
    return { syncMs, syncMiB: (bytes.up + bytes.down) / 2 ** 20, relayPeakMiB: relayPeak / 1024, browserPeakMiB: memory.peakSumMiB, rendererPeakMiB: memory.peakRendererMiB, coldMs }
  } finally {
    await device.close()
    await proxy.close()
  }
}

/** Plants `n` records, starts a relay over them, runs `body`, stops the relay and removes its data. */
async function withRelay<T>(context: BenchContext, n: number, body: (relay: { child: ChildProcess; port: number }) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-million-'))
  try {
    context.log(`million: planting ${n} records`)
    const planted = performance.now()
    await plant(dir, n)
    context.log(`million: planted in ${((performance.now() - planted) / 1000).toFixed(1)} s; starting the relay`)
    const relay = await startRelay(context.root, dir)
    try {
      return await body(relay)
    } finally {
      relay.child.kill('SIGTERM')
      await new Promise((resolve) => relay.child.once('exit', resolve))
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs workload 7: the Node protocol client at the largest size, then Outpost in Chromium at each size. */
export async function million(context: BenchContext): Promise<ResultRow[]> {
  const rows = await nodeClient(context)
  const sizes = context.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]
  const one = (value: number) => ({ outpost: summarize([value]) })
  for (const n of sizes) {
    try {
      const r = await withRelay(context, n, async (relay) => {
        await new Promise((resolve) => setTimeout(resolve, 1_000))
        return outpostInChromium(context, relay.port, relay.child.pid as number, n)
      })
      context.log(`million: Outpost in Chromium N=${n}: sync ${r.syncMs.toFixed(0)} ms, ${r.syncMiB.toFixed(1)} MiB, relay peak ${r.relayPeakMiB.toFixed(0)} MiB, browser peak ${r.browserPeakMiB.toFixed(0)} MiB (largest renderer ${r.rendererPeakMiB.toFixed(0)} MiB), cold ${r.coldMs.toFixed(0)} ms`)
      const workload = `7. Outpost in Chromium, N=${n.toLocaleString('en')}`
      rows.push(
        { workload, metric: 'initial sync: server → empty browser, durable + queryable (1 run)', unit: 'ms', lowerIsBetter: true, cells: one(r.syncMs) },
        { workload, metric: 'bytes, initial sync, both directions at the socket', unit: 'MiB', lowerIsBetter: true, cells: one(r.syncMiB) },
        { workload, metric: 'relay peak RSS during the sync', unit: 'MiB', lowerIsBetter: true, cells: one(r.relayPeakMiB) },
        { workload, metric: 'browser peak RSS during the sync, all processes', unit: 'MiB', lowerIsBetter: true, cells: one(r.browserPeakMiB) },
        { workload, metric: 'browser peak RSS during the sync, largest renderer (page + SharedWorker)', unit: 'MiB', lowerIsBetter: true, cells: one(r.rendererPeakMiB) },
        { workload, metric: 'cold start: page load → first query result, offline', unit: 'ms', lowerIsBetter: true, cells: one(r.coldMs) },
      )
    } catch (error) {
      const why = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error)
      context.log(`million: Outpost in Chromium N=${n} failed: ${why}`)
      rows.push({ workload: `7. Outpost in Chromium, N=${n.toLocaleString('en')}`, metric: 'initial sync', unit: 'ms', lowerIsBetter: true, cells: { outpost: { unavailable: why } } })
    }
  }
  return rows
}

/** The relay's memory with N records stored, and a Node protocol client streaming them all. */
async function nodeClient(context: BenchContext): Promise<ResultRow[]> {
  const n = context.quick ? 100_000 : 1_000_000
  return withRelay(context, n, async (relay) => {
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const idle = await rssKiB(relay.child.pid as number)
    const idleAnon = await rssAnonKiB(relay.child.pid as number)
    let peak = idle
    let peakAnon = idleAnon
    const sampler = setInterval(() => {
      void rssKiB(relay.child.pid as number).then((kib) => {
        peak = Math.max(peak, kib)
      }, () => undefined)
      void rssAnonKiB(relay.child.pid as number).then((kib) => {
        peakAnon = Math.max(peakAnon, kib)
      }, () => undefined)
    }, 100)
    const result = await stream(relay.port)
    clearInterval(sampler)
    context.log(`million: ${result.records} records in ${(result.ms / 1000).toFixed(1)} s; relay RSS idle ${(idle / 1024).toFixed(0)} MiB, peak ${(peak / 1024).toFixed(0)} MiB (anonymous: idle ${(idleAnon / 1024).toFixed(0)}, peak ${(peakAnon / 1024).toFixed(0)} MiB)`)
    const one = (value: number) => ({ outpost: summarize([value]) })
    const workload = `7. ${n.toLocaleString('en')} records stored`
    return [
      { workload, metric: 'relay RSS, records stored, idle', unit: 'MiB', lowerIsBetter: true, cells: one(idle / 1024) },
      { workload, metric: `initial sync of ${result.records.toLocaleString('en')} records to a Node client (flow control)`, unit: 'ms', lowerIsBetter: true, cells: one(result.ms) },
      { workload, metric: 'bytes on the wire', unit: 'MiB', lowerIsBetter: true, cells: one(result.bytes / 1024 / 1024) },
      { workload, metric: 'relay peak RSS while streaming', unit: 'MiB', lowerIsBetter: true, cells: one(peak / 1024) },
      { workload, metric: "relay anonymous RSS (RssAnon: heap and buffers, not the store's mapped pages), idle", unit: 'MiB', lowerIsBetter: true, cells: one(idleAnon / 1024) },
      { workload, metric: 'relay peak anonymous RSS while streaming', unit: 'MiB', lowerIsBetter: true, cells: one(peakAnon / 1024) },
      { workload, metric: 'client peak heap while receiving', unit: 'MiB', lowerIsBetter: true, cells: one(result.peakHeapMiB) },
    ]
  })
}
