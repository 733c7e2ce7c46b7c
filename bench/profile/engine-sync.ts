/**
 * A first look, in Node, at where an engine's time goes in an initial sync and a cold
 * start (fake-indexeddb stands in for the browser's IndexedDB, so IndexedDB figures are
 * only indicative; the Chromium rows of `npm run bench` are the measurement):
 *
 *   node --conditions=@outpost/source --import tsx bench/profile/engine-sync.ts [--records 100000] [--cpu-prof]
 *
 * Plants N records in a relay's LMDB store, starts the relay in process, syncs the whole
 * map into a fresh engine, prints the time and the store's work counters (transactions,
 * pages read/written, entries written), then closes it and measures a cold start (open →
 * first query of one group). Run Node with `--cpu-prof` to get a profile of both.
 */
import 'fake-indexeddb/auto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IDBFactory } from 'fake-indexeddb'
import { WebSocket } from 'ws'
import { createRelay } from '@outpost/server-lite'
import { createEngine, type Engine } from '../../packages/worker/src/engine'
import type { WebSocketConstructor } from '../../packages/worker/src/sync/sync-client'
import type { IdbStore } from '../../packages/worker/src/store/idb-store'
import { plant } from '../workloads/million'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}
const n = arg('--records', 100_000)

function ok<T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T {
  if (!r.ok) throw new Error(r.error.message)
  return r.value
}

const dir = await mkdtemp(join(tmpdir(), 'outpost-profile-'))
try {
  await plant(dir, n)
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir, logLevel: 'silent' })
  const idb = new IDBFactory()
  const url = `ws://127.0.0.1:${relay.port}`
  const engine: Engine = createEngine({ name: 'profile', mode: 'in-page', indexedDB: idb, url, WebSocket: WebSocket as unknown as WebSocketConstructor })
  const heap0 = process.memoryUsage().heapUsed
  let peakHeap = heap0
  const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 50)
  const t0 = performance.now()
  ok(await engine.subscribeShape({ map: 'items' }))
  while (engine.receivedRecords < n) await new Promise((r) => setTimeout(r, 5))
  await engine.flush()
  const syncMs = performance.now() - t0
  clearInterval(sampler)
  const stats = { ...(engine.store as IdbStore).stats }
  await engine.close()
  await relay.close()
  console.log(`initial sync ${n}: ${syncMs.toFixed(0)} ms; store ${JSON.stringify(stats)}; entries written per record ${(stats.entriesWritten / n).toFixed(2)}; peak heap +${((peakHeap - heap0) / 2 ** 20).toFixed(0)} MiB`)

  const t1 = performance.now()
  const cold = createEngine({ name: 'profile', mode: 'in-page', indexedDB: idb, startOffline: true })
  ok(await cold.ready())
  const readyMs = performance.now() - t1
  const rows = await new Promise<number>((resolve) => {
    void cold.subscribeQuery({ map: 'items', where: { eq: ['group', 7] }, limit: 100 }, (r) => resolve((r as unknown[]).length))
  })
  const coldMs = performance.now() - t1
  console.log(`cold start ${n}: ready ${readyMs.toFixed(0)} ms, first query (${rows} rows) ${coldMs.toFixed(0)} ms; store ${JSON.stringify((cold.store as IdbStore).stats)}`)
  await cold.close()
} finally {
  await rm(dir, { recursive: true, force: true })
}
