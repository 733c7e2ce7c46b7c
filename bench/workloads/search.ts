/**
 * Workload 9 (`--only search`): full-text search in the engine at N = 100,000 task records
 * of the demo's shape (quick: 10,000; `lib/task-data.ts`, seeded). Node, the engine in
 * process on fake-indexeddb (IndexedDB in JavaScript: its reads and writes are slower than
 * Chromium's, so the cold-start rows are pessimistic for the store part). Per run:
 * - index N records: time from `subscribeSearch` (with the declaration, map already in
 *   memory) to the first hits, and the heap the index retains (after a forced GC);
 * - query p50/p99 at N: 200 one-word prefix searches, each subscribe → first hits → end;
 * - live update after a write: a record's title is updated to contain the searched word;
 *   time from the `update` call to the hits that include it, 50 writes;
 * - the snapshot: its size, and the time to save it (`flush`: serialize + one commit);
 * - cold start: a new engine on the same database, map loaded (`get`), then time to the
 *   first hits with the snapshot persisted (restored, nothing re-indexed) vs removed
 *   (rebuilt from the records).
 * The records are planted straight into the store (not measured).
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { IDBFactory } from 'fake-indexeddb'
import { lwwSetState, type RecordValue, type Stamp } from '@outpost/core'
import { IdbStore, createEngine, searchCollectionOf, type Engine, type SearchHit, type SearchSpec } from '@outpost/worker'
import type { BenchContext } from '../lib/context'
import type { ResultRow } from '../lib/results'
import { quantile, summarize } from '../lib/stats'
import { makeTasks, queryWords } from '../lib/task-data'

const SEED = 14
const DECLARATION = { fields: ['title', 'notes'] }

setFlagsFromString('--expose_gc')
const gc = runInNewContext('gc') as () => void

function heapMiB(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed / 1024 / 1024
}

/** Plants `tasks` into the database `name` as the engine stores them. */
async function plant(indexedDB: IDBFactory, name: string, tasks: ReturnType<typeof makeTasks>): Promise<void> {
  const store = await IdbStore.open(`outpost:${name}`, { indexedDB })
  const stamp = (i: number): Stamp => `${(1_700_000_000_000 + i).toString(36).padStart(10, '0')}-0000-seed` as Stamp
  for (let i = 0; i < tasks.length; i += 10_000) {
    await store.commit({
      puts: tasks.slice(i, i + 10_000).map(({ key, value }, j) => ({ collection: 'r/lww/tasks', key, value: lwwSetState(value as unknown as RecordValue, stamp(2 * (i + j)), stamp(2 * (i + j) + 1)) as never })),
    })
  }
  await store.close()
}

function open(indexedDB: IDBFactory, name: string): Engine {
  return createEngine({ name, mode: 'in-page', indexedDB, searchPersistDelayMs: 3_600_000 })
}

/** Subscribes; resolves with the first hits and the time they took, and the subscription id. */
async function firstHits(engine: Engine, spec: SearchSpec): Promise<{ ms: number; id: number; hits: readonly SearchHit[] }> {
  const started = performance.now()
  let hits: readonly SearchHit[] = []
  const result = await engine.subscribeSearch(spec, (h) => {
    hits = h
  })
  if (!result.ok) throw new Error(`search failed: ${result.error.code} ${result.error.message}`)
  return { ms: performance.now() - started, id: result.value, hits }
}

interface RunFigures {
  indexMs: number
  indexHeapMiB: number
  queryP50: number
  queryP99: number
  liveP50: number
  liveP99: number
  snapshotMiB: number
  saveMs: number
  mapLoadMs: number
  coldPersistedMs: number
  coldRebuiltMs: number
  reindexedOnColdStart: number
}

async function oneRun(n: number, run: number, log: (m: string) => void): Promise<RunFigures> {
  const tasks = makeTasks(n, SEED)
  const words = queryWords(tasks, 200, SEED + 1)
  const indexedDB = new IDBFactory()
  const name = `search-bench-${run}`
  await plant(indexedDB, name, tasks)

  // Index N records (map already in memory, so this is the index alone).
  let engine = open(indexedDB, name)
  await engine.get('tasks', 'none')
  const heapBefore = heapMiB()
  const built = await firstHits(engine, { map: 'tasks', declaration: DECLARATION, text: words[0] as string })
  const indexMs = built.ms
  const indexHeapMiB = heapMiB() - heapBefore
  if (engine.searchStats.indexed !== n) throw new Error(`indexed ${engine.searchStats.indexed} of ${n}`)
  log(`search: run ${run} indexed ${n} in ${(indexMs / 1000).toFixed(1)} s, ${indexHeapMiB.toFixed(0)} MiB`)

  // Query p50/p99.
  const times: number[] = []
  for (const word of words) {
    const { ms, id } = await firstHits(engine, { map: 'tasks', text: word.slice(0, Math.max(3, word.length - 2)) })
    times.push(ms)
    await engine.unsubscribeSearch(id)
  }

  // Live update after a write.
  const marker = 'zebraword'
  let pending: { key: string; started: number; resolve: (ms: number) => void } | undefined
  const live = await engine.subscribeSearch({ map: 'tasks', text: marker, limit: 100 }, (hits) => {
    if (pending !== undefined && hits.some((h) => h.key === pending?.key)) {
      const done = pending
      pending = undefined
      done.resolve(performance.now() - done.started)
    }
  })
  if (!live.ok) throw new Error(live.error.message)
  const liveTimes: number[] = []
  for (let i = 0; i < 50; i++) {
    const key = (tasks[(i * 1_999) % n] as { key: string }).key
    liveTimes.push(
      await new Promise<number>((resolve) => {
        pending = { key, started: performance.now(), resolve }
        void engine.update('tasks', key, { title: `${marker} ${i}` })
      }),
    )
  }
  await engine.unsubscribeSearch(live.value)

  // Save the snapshot (flush saves what is unsaved: the index changed by the writes above), then close.
  const saveStarted = performance.now()
  await engine.flush()
  const saveMs = performance.now() - saveStarted
  await engine.close()
  const snapshotStore = await IdbStore.open(`outpost:${name}`, { indexedDB })
  const snapshot = await snapshotStore.get(searchCollectionOf('tasks'), 'index')
  await snapshotStore.close()
  const snapshotMiB = snapshot instanceof Uint8Array ? snapshot.byteLength / 1024 / 1024 : Number.NaN

  // Cold start, persisted.
  engine = open(indexedDB, name)
  const loadStarted = performance.now()
  await engine.get('tasks', 'none')
  const mapLoadMs = performance.now() - loadStarted
  const persisted = await firstHits(engine, { map: 'tasks', declaration: DECLARATION, text: marker })
  const reindexedOnColdStart = engine.searchStats.indexed
  if (engine.searchStats.restored !== 1) throw new Error('the snapshot was not restored')
  await engine.store?.commit({ deletes: [{ collection: searchCollectionOf('tasks'), key: 'index' }] })
  await engine.close()

  // Cold start, rebuilt (no snapshot).
  engine = open(indexedDB, name)
  await engine.get('tasks', 'none')
  const rebuilt = await firstHits(engine, { map: 'tasks', declaration: DECLARATION, text: marker })
  if (engine.searchStats.rebuilt !== 1 || rebuilt.hits.length !== persisted.hits.length) throw new Error('the rebuilt index answers differently')
  await engine.close()
  log(`search: run ${run} cold start persisted ${persisted.ms.toFixed(0)} ms (re-indexed ${reindexedOnColdStart}), rebuilt ${rebuilt.ms.toFixed(0)} ms`)

  return {
    indexMs,
    indexHeapMiB,
    queryP50: quantile(times, 0.5),
    queryP99: quantile(times, 0.99),
    liveP50: quantile(liveTimes, 0.5),
    liveP99: quantile(liveTimes, 0.99),
    snapshotMiB,
    saveMs,
    mapLoadMs,
    coldPersistedMs: persisted.ms,
    coldRebuiltMs: rebuilt.ms,
    reindexedOnColdStart,
  }
}

/** Runs workload 9. */
export async function searchLoad(context: BenchContext): Promise<ResultRow[]> {
  // idb needs the IDB* globals (IDBRequest, IDBCursor, …); set here so the other workloads' process state is untouched until this one runs.
  const fake = (await import('fake-indexeddb')) as unknown as Record<string, unknown>
  for (const [name, value] of Object.entries(fake)) if (name.startsWith('IDB') && !(name in globalThis)) Object.assign(globalThis, { [name]: value })
  const n = context.quick ? 10_000 : 100_000
  // Each run re-plants and re-indexes N records: three runs (not five) keep the full run under ~10 min.
  const runs = Math.min(context.repeats.runs, 3)
  const figures: RunFigures[] = []
  for (let run = 0; run < runs; run++) figures.push(await oneRun(n, run, context.log))
  const cells = (pick: (f: RunFigures) => number) => ({ outpost: summarize(figures.map(pick)) })
  const workload = `9. search, ${n.toLocaleString('en')} tasks`
  return [
    { workload, metric: 'index all records (declared search → first hits, map in memory)', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.indexMs) },
    { workload, metric: 'heap retained by the index', unit: 'MiB', lowerIsBetter: true, cells: cells((f) => f.indexHeapMiB) },
    { workload, metric: 'query p50 (one-word prefix, top 20, subscribe → hits)', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.queryP50) },
    { workload, metric: 'query p99', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.queryP99) },
    { workload, metric: 'live update: write → hits include it, p50', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.liveP50) },
    { workload, metric: 'live update p99', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.liveP99) },
    { workload, metric: 'persisted snapshot size', unit: 'MiB', lowerIsBetter: true, cells: cells((f) => f.snapshotMiB) },
    { workload, metric: 'save the snapshot (serialize + commit)', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.saveMs) },
    { workload, metric: 'cold start: load the map (fake-indexeddb)', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.mapLoadMs) },
    { workload, metric: 'cold start → first hits, index persisted', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.coldPersistedMs) },
    { workload, metric: 'cold start → first hits, index rebuilt', unit: 'ms', lowerIsBetter: true, cells: cells((f) => f.coldRebuiltMs) },
    { workload, metric: 'records re-indexed on the persisted cold start', unit: 'records', lowerIsBetter: true, cells: cells((f) => f.reindexedOnColdStart) },
  ]
}
