/**
 * How one commit rewrites the pages it touches, inside its readwrite transaction (see
 * `idb-store.ts` for the layout and why pages). Pages that exist and are not cached are read
 * back, every read issued before any is awaited; a small commit (at most
 * {@link SMALL_COMMIT} puts and deletes) changes only its records in the cached page
 * (`page-cache.ts`), a big one (bulk loads, remote flushes) encodes each page once and splits
 * what overflows.
 */
import type { DBSchema, IDBPTransaction } from 'idb'
import type { StoreBatch, Value } from '@outpost/core'
import { decodePage, encodePage, type StoredPage } from './page-codec'
import { CachedPage, type PageCache } from './page-cache'
import { splitPage } from './page-split'

/**
 * Most entries one page holds before it is split. Hash prefixes split 16 ways, so with
 * evenly spread keys pages hold between 1/16 of this and all of it: 512 keeps 100,000
 * records in 256 pages of ~390 and 1,000,000 in 4,096 of ~244 (64 made 4,096 pages of ~24
 * at 100,000), while a single write still rewrites at most 512 compact entries.
 */
export const PAGE_MAX_RECORDS = 512

/**
 * Commits with at most this many puts and deletes update pages through the page cache
 * (`page-cache.ts`): encode only the changed records, read nothing back. Bigger ones (bulk
 * loads, remote flushes) take the plain path, which encodes each page once anyway, and
 * drop the pages they touch from the cache.
 */
export const SMALL_COMMIT = 256

/** Records the page cache holds at most (least recently used pages go first). */
export const PAGE_CACHE_RECORDS = 32_768

/** The database's object stores (the layout is in `idb-store.ts`). */
export interface OutpostDb extends DBSchema {
  pages: { key: [string, string]; value: StoredPage }
  sys: { key: string | [string, string]; value: unknown }
  meta: { key: string; value: Value }
}

export type WriteTx = IDBPTransaction<OutpostDb, ('pages' | 'sys' | 'meta')[], 'readwrite'>

/** Counters of the work IndexedDB did, for tests and benchmarks (structural costs, not timings). */
export interface IdbStoreStats {
  /** Readwrite transactions committed. */
  transactions: number
  /** Page values read. */
  pagesRead: number
  /** Page values written. */
  pagesWritten: number
  /** Entries in written pages (what IndexedDB clones). */
  entriesWritten: number
  /** Entries encoded into the page layout (a small commit encodes only the records it changes). */
  entriesEncoded: number
}

/** What a commit's transaction wrote: its sequence number and the pages written and removed. */
export interface WriteResult {
  seq: number
  written: [string, string][]
  removed: [string, string][]
}

/** A page write queued inside one commit. */
export interface PageWork {
  collection: string
  prefix: string
  puts: Map<string, Value>
  deletes: Set<string>
}

/** What {@link writePages} keeps across commits: the store's caches and counters. */
export interface PageWriteState {
  readonly pageCache: PageCache
  /** collection → prefixes of the pages that exist. */
  readonly present: ReadonlyMap<string, Set<string>>
  readonly stats: IdbStoreStats
  /** The last committed sequence number, once read. */
  readonly seq: number | undefined
}

/** Rewrites the pages of `work` and bumps `seq` in `tx`; the caller awaits `tx.done`. */
export async function writePages(tx: WriteTx, work: Map<string, PageWork>, dirs: Map<string, Set<string>>, batch: StoreBatch, hashOf: (key: string) => string, state: PageWriteState): Promise<WriteResult> {
  const pages = tx.objectStore('pages')
  const sys = tx.objectStore('sys')
  const meta = tx.objectStore('meta')
  const items = [...work.values()]
  let changes = 0
  for (const w of items) changes += w.puts.size + w.deletes.size
  const small = changes <= SMALL_COMMIT
  const ids = items.map((w) => `${w.collection}\u0000${w.prefix}`)
  const cached = items.map((_, i) => (small ? state.pageCache.get(ids[i] as string) : undefined))
  if (!small) for (const id of ids) state.pageCache.delete(id)
  // Only pages that exist and are not cached are read back (a bulk load into a fresh map
  // reads none but the boundary page of the previous flush; a small commit on pages it
  // wrote before reads none); every read is issued before any is awaited, so the
  // transaction never idles.
  const exists = items.map((w, i) => cached[i] === undefined && (state.present.get(w.collection)?.has(w.prefix) ?? true))
  const [seqValue, ...current] = await Promise.all([
    state.seq ?? sys.get('seq'),
    ...items.map((w, i) => (exists[i] === true ? pages.get([w.collection, w.prefix]) : undefined)),
  ])
  state.stats.pagesRead += exists.filter(Boolean).length
  // Each request is marked handled as it is made: if building the batch throws half way
  // (the transaction is then aborted), the requests already made reject unobserved.
  const writes: Promise<unknown>[] = []
  const track = (request: Promise<unknown>): void => {
    request.catch(() => undefined)
    writes.push(request)
  }
  const written: [string, string][] = []
  const removed: [string, string][] = []
  const splitCollections = new Set<string>()
  items.forEach((w, i) => {
    const stored = current[i]
    const id = ids[i] as string
    let entries: Map<string, Value>
    if (small) {
      // Change only the written records of the cached (or just read) page.
      const page = cached[i] ?? (stored === undefined ? new CachedPage() : CachedPage.fromStored(stored))
      for (const key of w.deletes) page.delete(key)
      for (const [key, value] of w.puts) page.put(key, value)
      state.stats.entriesEncoded += w.puts.size
      if (page.size === 0) {
        state.pageCache.delete(id)
        track(pages.delete([w.collection, w.prefix]))
        removed.push([w.collection, w.prefix])
        return
      }
      if (page.size <= PAGE_MAX_RECORDS) {
        page.compactIfBloated()
        // put clones the page synchronously: later changes to the cached arrays never reach it.
        track(pages.put(page.stored, [w.collection, w.prefix]))
        state.pageCache.set(id, page)
        written.push([w.collection, w.prefix])
        state.stats.pagesWritten++
        state.stats.entriesWritten += page.size
        return
      }
      // Overfull: split as the plain path does; the children are cached once written by a small commit.
      state.pageCache.delete(id)
      entries = page.entries()
    } else {
      // A page that did not exist is just this batch's puts (a bulk load writes mostly such pages): no copy.
      entries = stored === undefined ? w.puts : decodePage(stored)
      if (stored !== undefined) {
        for (const key of w.deletes) entries.delete(key)
        for (const [key, value] of w.puts) entries.set(key, value)
      }
    }
    const dir = dirs.get(w.collection) as Set<string>
    for (const [prefix, pageEntries] of splitPage(w.prefix, entries, PAGE_MAX_RECORDS, dir, splitCollections, w.collection, hashOf)) {
      if (pageEntries.size === 0) {
        track(pages.delete([w.collection, prefix]))
        removed.push([w.collection, prefix])
      } else {
        track(pages.put(encodePage(pageEntries), [w.collection, prefix]))
        written.push([w.collection, prefix])
        state.stats.pagesWritten++
        state.stats.entriesWritten += pageEntries.size
        state.stats.entriesEncoded += pageEntries.size
      }
    }
  })
  for (const collection of splitCollections) track(sys.put([...(dirs.get(collection) as Set<string>)], ['dir', collection]))
  for (const { key, value } of batch.meta ?? []) track(value === null ? meta.delete(key) : meta.put(value, key))
  const seq = (typeof seqValue === 'number' ? seqValue : 0) + 1
  track(sys.put(seq, 'seq'))
  await Promise.all(writes)
  return { seq, written, removed }
}
