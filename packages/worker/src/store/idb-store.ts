/**
 * `IdbStore`: core's {@link Store} on IndexedDB (through `idb`), laid out for speed.
 *
 * ## Why pages
 * IndexedDB costs roughly 0.1 ms per stored value on a small machine, so one value per
 * record caps an initial sync near 10,000 records/s. Records are therefore grouped into
 * *pages*: one IndexedDB value holds every key of one collection whose `hash64(key)` starts
 * with the page's hex prefix, in the compact layout of `page-codec.ts`.
 *
 * ## Layout (database version 2; `upgrade.ts` migrates version 1 in place)
 * - `pages`: key `[collection, prefix]`, value a compact page (`page-codec.ts`).
 *   A page holds at most `PAGE_MAX_RECORDS` (`page-writes.ts`) entries: when a commit would overfill
 *   one, it is split (in the same transaction) into up to 16 pages one nibble longer.
 *   So a 100,000-record initial sync writes a few thousand values, and a single write
 *   rewrites one page of at most `PAGE_MAX_RECORDS` (`page-writes.ts`) records, whatever the map size.
 * - `sys`: `['dir', collection]` → the prefixes that were split (the page directory: a
 *   key's page is found by walking its hash's nibbles while the prefix is split), and
 *   `'seq'` → the last commit sequence number.
 * - `meta`: key → value, the {@link Store.getMeta} namespace.
 *
 * ## Bulk loads write each record once, and read nothing back
 * The relay streams a slice in Merkle leaf order, which is hash order, so consecutive
 * flushes of a slice fill consecutive pages. The store knows which pages exist (their keys
 * are loaded with the directory, keys only), so a commit reads back only pages that exist:
 * for a fresh map that is at most the one page a previous flush left at the boundary.
 *
 * Every commit is ONE readwrite transaction over all three stores (read the touched pages,
 * rewrite them, bump `seq`), awaited through `tx.done`, so a crash leaves either the whole
 * batch or none of it. Commits run one at a time (a promise chain), which keeps the
 * in-memory copy of the page directory and of the existing pages exact: this store is the
 * database's only writer: it holds the database's exclusive Web Lock from open to close
 * (`db-lock.ts`; another engine waits, then gets DATABASE_LOCKED), and a newer version asking
 * to upgrade closes it (see `versionchange`).
 * A `QuotaExceededError` from IndexedDB becomes core's {@link QuotaExceededError}; the
 * transaction aborts, so what was committed before stays intact.
 */
import { wrap, type IDBPDatabase } from 'idb'
import {
  QuotaExceededError,
  StoreClosedError,
  StoreError,
  assertStoredValue,
  hash64,
  type ScanOptions,
  type Store,
  type StoreBatch,
  type StoreEntry,
  type Value,
} from '@outpost/core'
import { decodePages, pageSize, valueInPage, type StoredPage } from './page-codec'
import { PageCache } from './page-cache'
import { PAGE_CACHE_RECORDS, writePages, type IdbStoreStats, type OutpostDb, type PageWork, type WriteResult } from './page-writes'
import { DB_VERSION, upgradeDatabase } from './upgrade'
import { acquireDbLock, defaultLocks, type DbLock } from './db-lock'

export { PAGE_MAX_RECORDS, SMALL_COMMIT, PAGE_CACHE_RECORDS, type IdbStoreStats } from './page-writes'
export { DB_LOCK_WAIT_MS, dbLockName } from './db-lock'


/** Options of {@link IdbStore.open}. */
export interface IdbStoreOptions {
  /** The IndexedDB factory (default: the global `indexedDB`); tests pass a fresh fake one. */
  readonly indexedDB?: IDBFactory
  /**
   * The Web Locks manager that keeps this store the database's only writer (`db-lock.ts`);
   * default `navigator.locks`, none where the runtime has none.
   */
  readonly locks?: LockManager
  /** How long (ms) to wait for another holder of the database (default `DB_LOCK_WAIT_MS`) before core's `DatabaseLockedError`. */
  readonly lockWaitMs?: number
}

function isQuotaError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'QuotaExceededError'
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Core's {@link Store} on IndexedDB, with records grouped into hash-prefix pages (see the module comment). */
export class IdbStore implements Store {
  readonly name = 'indexeddb'
  /** Work counters since open. */
  readonly stats: IdbStoreStats = { transactions: 0, pagesRead: 0, pagesWritten: 0, entriesWritten: 0, entriesEncoded: 0 }
  /** The IndexedDB database name. */
  readonly dbName: string
  readonly #db: IDBPDatabase<OutpostDb>
  /** collection → split prefixes, loaded on first use. */
  readonly #dirs = new Map<string, Set<string>>()
  /** collection → prefixes of the pages that exist, loaded with the directory (keys only), so a commit never reads a page that is not there. */
  readonly #present = new Map<string, Set<string>>()
  #queue: Promise<unknown> = Promise.resolve()
  readonly #scanCache = new Map<string, { all: Map<string, Value>; keys: string[] }>()
  #closed = false
  /** Pages as last committed, for small commits (see {@link SMALL_COMMIT}). */
  readonly #pageCache = new PageCache(PAGE_CACHE_RECORDS)
  /** The last committed sequence number, once read (this store is the only writer). */
  #seq: number | undefined

  /** The database's writer lock, held until close (see `db-lock.ts`). */
  readonly #lock: DbLock

  private constructor(db: IDBPDatabase<OutpostDb>, dbName: string, lock: DbLock) {
    this.#db = db
    this.dbName = dbName
    this.#lock = lock
  }

  /**
   * Opens (creating if needed) the database `name` and takes its writer lock. Rejects with
   * {@link StoreError} when IndexedDB refuses, and with core's `DatabaseLockedError` (`DATABASE_LOCKED`) when
   * another engine holds the database longer than `lockWaitMs`.
   */
  static async open(name: string, options: IdbStoreOptions = {}): Promise<IdbStore> {
    const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB
    if (factory === undefined) throw new StoreError('IndexedDB is not available in this context; use an in-memory store')
    // Open through the given factory directly (never by swapping `globalThis.indexedDB`,
    // which is a read-only getter in browsers), then let idb wrap the connection.
    let db: IDBPDatabase<OutpostDb>
    try {
      const raw = await new Promise<IDBDatabase>((resolve, reject) => {
        const request = factory.open(name, DB_VERSION)
        request.onupgradeneeded = (event) => upgradeDatabase(request.result, request.transaction as IDBTransaction, event.oldVersion)
        request.onsuccess = () => resolve(request.result)
        request.onerror = () => reject(request.error ?? new Error('IndexedDB open failed'))
      })
      db = wrap(raw) as IDBPDatabase<OutpostDb>
    } catch (error) {
      if (isQuotaError(error)) throw new QuotaExceededError('IndexedDB refused to open the database: storage quota exceeded', { name }, { cause: error })
      throw new StoreError(`could not open IndexedDB database "${name}": ${String(error)}`, { name }, { cause: error })
    }
    // A newer layout wants to upgrade (a new deploy's worker): step aside, or it would wait
    // for this connection forever. What this store committed stays; later calls reject.
    // Listened to before the lock is taken: an upgrade is what a holder's successor does first.
    let store: IdbStore | undefined
    let steppedAside = false
    db.addEventListener('versionchange', () => {
      steppedAside = true
      if (store === undefined) db.close()
      else store.#stepAside()
    })
    // The database is opened first (an upgrade makes an older holder step aside and release
    // the lock), then nothing is read before the lock is held.
    let lock: DbLock
    try {
      lock = await acquireDbLock(options.locks ?? defaultLocks(), name, options.lockWaitMs)
    } catch (error) {
      db.close()
      throw error
    }
    store = new IdbStore(db, name, lock)
    if (steppedAside) store.#stepAside()
    return store
  }

  #stepAside(): void {
    this.#closed = true
    this.#db.close()
    this.#lock.release()
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError('the IndexedDB store is closed; open a new one')
  }

  /** Runs `task` after every earlier queued task, so commits never interleave. */
  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task)
    this.#queue = run.catch(() => undefined)
    return run
  }

  async #dir(collection: string): Promise<Set<string>> {
    let dir = this.#dirs.get(collection)
    if (dir === undefined) {
      const [stored, keys] = await Promise.all([this.#db.get('sys', ['dir', collection]) as Promise<string[] | undefined>, this.#db.getAllKeys('pages', this.#range(collection))])
      dir = new Set(stored ?? [])
      this.#dirs.set(collection, dir)
      this.#present.set(collection, new Set(keys.map(([, prefix]) => prefix)))
    }
    return dir
  }

  /** The page prefix of `key` (whose `hash64` is `h`) under directory `dir`. */
  static pagePrefix(dir: ReadonlySet<string>, key: string, h: string = hash64(key)): string {
    let len = 0
    while (len < h.length && dir.has(h.slice(0, len))) len++
    return h.slice(0, len)
  }

  #range(collection: string): IDBKeyRange {
    // Prefixes are lowercase hex, so every page of the collection sorts between '' and 'g'.
    return IDBKeyRange.bound([collection, ''], [collection, 'g'])
  }

  /** The value under `key`, or undefined. */
  async get(collection: string, key: string): Promise<Value | undefined> {
    return (await this.getMany(collection, [key]))[0]
  }

  /** The values under `keys`, in order. Reads each touched page once. */
  async getMany(collection: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    this.#check()
    return this.#serial(async () => {
      this.#check()
      const dir = await this.#dir(collection)
      const prefixes = keys.map((key) => IdbStore.pagePrefix(dir, key))
      const unique = [...new Set(prefixes)]
      const tx = this.#db.transaction('pages', 'readonly')
      const pages = await Promise.all(unique.map((p) => tx.store.get([collection, p])))
      await tx.done
      this.stats.pagesRead += unique.length
      const byPrefix = new Map<string, StoredPage | undefined>()
      unique.forEach((p, i) => byPrefix.set(p, pages[i]))
      return keys.map((key, i) => {
        const page = byPrefix.get(prefixes[i] as string)
        return page === undefined ? undefined : valueInPage(page, key)
      })
    })
  }

  /**
   * Every entry of a collection as a Map (unsorted): the engine's bulk load of a map into
   * memory, one `getAll` over the collection's pages.
   */
  async loadCollection(collection: string): Promise<Map<string, Value>> {
    return decodePages(await this.readPages(collection))
  }

  /**
   * Every page of a collection as stored (compact, undecoded), one `getAll`: a cold start
   * answers its first query from these (see `page-codec.ts` `forEachViewInPage`) and
   * decodes them into a map only when something needs the records themselves. (Reading it
   * in 17 `getAll`s by first hex digit, so that cloning overlaps reading, showed no gain.)
   */
  async readPages(collection: string): Promise<StoredPage[]> {
    this.#check()
    return this.#serial(async () => {
      this.#check()
      const pages = await this.#db.getAll('pages', this.#range(collection))
      this.stats.pagesRead += pages.length
      return pages
    })
  }

  /** A page of entries in key order (code-unit order), after `options.after`. */
  async scan(collection: string, options: ScanOptions = {}): Promise<StoreEntry[]> {
    // Paging calls scan repeatedly: keep the sorted collection until a commit changes it.
    let cached = this.#scanCache.get(collection)
    if (cached === undefined) {
      const all = await this.loadCollection(collection)
      cached = { all, keys: [...all.keys()].sort(compareKeys) }
      this.#scanCache.set(collection, cached)
    }
    const { all, keys } = cached
    let start = 0
    if (options.after !== undefined) {
      const after = options.after
      let lo = 0
      let hi = keys.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if ((keys[mid] as string) <= after) lo = mid + 1
        else hi = mid
      }
      start = lo
    }
    const end = options.limit === undefined ? keys.length : Math.min(keys.length, start + options.limit)
    // structuredClone: callers may mutate what they get without touching the cache.
    return keys.slice(start, end).map((key) => ({ collection, key, value: structuredClone(all.get(key) as Value) }))
  }

  /** How many entries the collection holds. */
  async count(collection: string): Promise<number> {
    this.#check()
    return this.#serial(async () => {
      this.#check()
      const pages = await this.#db.getAll('pages', this.#range(collection))
      return pages.reduce((n, page) => n + pageSize(page), 0)
    })
  }

  /** Names of collections with at least one entry. */
  async collections(): Promise<string[]> {
    this.#check()
    return this.#serial(async () => {
      this.#check()
      const keys = await this.#db.getAllKeys('pages')
      return [...new Set(keys.map(([collection]) => collection))].sort(compareKeys)
    })
  }

  /** The metadata value under `key`. */
  async getMeta(key: string): Promise<Value | undefined> {
    this.#check()
    return this.#serial(async () => {
      this.#check()
      return this.#db.get('meta', key)
    })
  }

  /** The metadata values under `keys`, in order, read in one transaction (a start-up reads a dozen). */
  async getMetaMany(keys: readonly string[]): Promise<(Value | undefined)[]> {
    this.#check()
    return this.#serial(async () => {
      this.#check()
      const tx = this.#db.transaction('meta', 'readonly')
      const values = await Promise.all(keys.map((key) => tx.store.get(key)))
      await tx.done
      return values
    })
  }

  /**
   * Applies the batch in one transaction (see the module comment); resolves once IndexedDB
   * reports it complete. Values are checked first unless the batch is `checked`: the
   * engine's commits are, their values were checked where they entered (a tab's arguments,
   * the relay's changes as they arrive), and a second walk over every record of a flush
   * was a sizeable part of an initial sync.
   */
  async commit(batch: StoreBatch): Promise<{ readonly seq: number }> {
    this.#check()
    if (batch.checked !== true) {
      for (const entry of batch.puts ?? []) assertStoredValue(entry.value, `${entry.collection}/${entry.key}`)
      for (const entry of batch.meta ?? []) if (entry.value !== null) assertStoredValue(entry.value, `meta/${entry.key}`)
    }
    return this.#serial(async () => {
      this.#check()
      // The directories first (a copy each: a split joins it only once the commit is done),
      // so grouping the batch by page below is one synchronous pass, not an await per entry.
      const dirs = new Map<string, Set<string>>()
      for (const entries of [batch.puts ?? [], batch.deletes ?? []]) {
        for (const { collection } of entries) if (!dirs.has(collection)) dirs.set(collection, new Set(await this.#dir(collection)))
      }
      // Each key's hash is computed once per commit: its page and, when that page splits, its child pages use it.
      const hashes = new Map<string, string>()
      const hashOf = (key: string): string => {
        let h = hashes.get(key)
        if (h === undefined) {
          h = hash64(key)
          hashes.set(key, h)
        }
        return h
      }
      // Group the batch by page; later writes to a key win, as if applied in order.
      const work = new Map<string, PageWork>()
      const touch = (collection: string, key: string): PageWork => {
        const prefix = IdbStore.pagePrefix(dirs.get(collection) as Set<string>, key, hashOf(key))
        const id = `${collection}\u0000${prefix}`
        let page = work.get(id)
        if (page === undefined) {
          page = { collection, prefix, puts: new Map(), deletes: new Set() }
          work.set(id, page)
        }
        return page
      }
      for (const { collection, key, value } of batch.puts ?? []) {
        const page = touch(collection, key)
        page.deletes.delete(key)
        page.puts.set(key, value)
      }
      for (const { collection, key } of batch.deletes ?? []) {
        const page = touch(collection, key)
        page.puts.delete(key)
        page.deletes.add(key)
      }
      try {
        const tx = this.#db.transaction(['pages', 'sys', 'meta'], 'readwrite')
        let result: WriteResult
        try {
          result = await writePages(tx, work, dirs, batch, hashOf, { pageCache: this.#pageCache, present: this.#present, stats: this.stats, seq: this.#seq })
        } catch (error) {
          // Never let a transaction with part of the batch commit on its own.
          tx.done.catch(() => undefined)
          try {
            tx.abort()
          } catch {
            // Already finished (aborted by IndexedDB itself).
          }
          throw error
        }
        const { seq, written, removed } = result
        await tx.done
        this.#seq = seq
        for (const [collection, dir] of dirs) this.#dirs.set(collection, dir)
        for (const [collection, prefix] of written) this.#present.get(collection)?.add(prefix)
        for (const [collection, prefix] of removed) this.#present.get(collection)?.delete(prefix)
        for (const w of work.values()) this.#scanCache.delete(w.collection)
        this.stats.transactions++
        return { seq }
      } catch (error) {
        // Cached pages were changed for a transaction that did not commit.
        for (const w of work.values()) this.#pageCache.delete(`${w.collection}\u0000${w.prefix}`)
        if (isQuotaError(error)) {
          throw new QuotaExceededError('the browser refused to store more data (storage quota exceeded); nothing of this write was stored, earlier data is intact. Free space or request persistent storage.', undefined, { cause: error })
        }
        if (error instanceof StoreClosedError) throw error
        throw new StoreError(`IndexedDB commit failed: ${String(error)}`, undefined, { cause: error })
      }
    })
  }

  /** Waits for queued work, then closes the database. Later calls reject with {@link StoreClosedError}. */
  async close(): Promise<void> {
    if (this.#closed) return
    await this.#queue
    this.#closed = true
    this.#db.close()
    this.#lock.release()
  }
}
