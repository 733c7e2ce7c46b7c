/**
 * A {@link Store} held in memory: what the worker runs on when IndexedDB is unavailable
 * (private modes), what tests use, and the reference every other backend is compared
 * with by the acceptance suite. Nothing survives the process; {@link MemoryStore.reopen}
 * reopens the same in-memory data, the way a durable backend reopens its files.
 */
import { InvalidKeyError, StoreClosedError, StoreError } from '../errors'
import type { Value } from '../types'
import { assertStoredValue } from '../value'
import type { ScanOptions, Store, StoreBatch, StoreEntry } from './store'
import { MemorySyncData } from './memory-sync'
import type { HashSum } from '../merkle/node-sums'
import type { RecordScan, SyncLogEntry, SyncMapInfo, SyncRecord, SyncStore, WriteOutcome, WriteRequest } from './sync-store'

/** One collection: its entries and, built lazily for `scan`, its keys in order. */
interface Collection {
  readonly entries: Map<string, Value>
  /** Keys in ascending UTF-16 order, or null when a put added a key since it was built. */
  sorted: string[] | null
}

/** The data behind one or more successive {@link MemoryStore} instances (see `reopen`). */
interface Backing {
  readonly collections: Map<string, Collection>
  readonly meta: Map<string, Value>
  seq: number
  /** The relay's record data ({@link SyncStore}). */
  readonly sync: MemorySyncData
}

/** An in-memory {@link Store} (and {@link SyncStore}). Values are copied in and out, so callers cannot change stored data. */
export class MemoryStore implements Store, SyncStore {
  /** Always `'memory'`. */
  readonly name = 'memory'
  #backing: Backing
  #closed = false

  /** Creates an empty store. */
  constructor() {
    this.#backing = { collections: new Map(), meta: new Map(), seq: 0, sync: new MemorySyncData() }
  }

  /**
   * A new store over this store's data, as if it had been closed and opened again. Close
   * this one first; sequence numbers keep increasing from where it left off.
   */
  reopen(): MemoryStore {
    const next = new MemoryStore()
    next.#backing = this.#backing
    return next
  }

  get(collection: string, key: string): Promise<Value | undefined> {
    return this.#run(() => {
      checkName(collection, 'collection')
      checkName(key, 'key')
      const value = this.#data().collections.get(collection)?.entries.get(key)
      return value === undefined ? undefined : cloneValue(value)
    })
  }

  getMany(collection: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    return this.#run(() => {
      checkName(collection, 'collection')
      const entries = this.#data().collections.get(collection)?.entries
      return keys.map((key) => {
        checkName(key, 'key')
        const value = entries?.get(key)
        return value === undefined ? undefined : cloneValue(value)
      })
    })
  }

  scan(collection: string, options: ScanOptions = {}): Promise<StoreEntry[]> {
    return this.#run(() => {
      checkName(collection, 'collection')
      const { after, limit } = options
      if (after !== undefined) checkName(after, 'after')
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
        throw new StoreError(`scan limit must be a positive integer, got ${String(limit)}`, { limit })
      }
      const found = this.#data().collections.get(collection)
      if (found === undefined) return []
      const keys = sortedKeys(found)
      let start = 0
      if (after !== undefined) {
        // Binary search for the first key strictly greater than `after`.
        let high = keys.length
        while (start < high) {
          const middle = (start + high) >>> 1
          if ((keys[middle] as string) <= after) start = middle + 1
          else high = middle
        }
      }
      const end = limit === undefined ? keys.length : Math.min(keys.length, start + limit)
      const page: StoreEntry[] = []
      for (let i = start; i < end; i++) {
        const key = keys[i] as string
        page.push({ collection, key, value: cloneValue(found.entries.get(key) as Value) })
      }
      return page
    })
  }

  count(collection: string): Promise<number> {
    return this.#run(() => {
      checkName(collection, 'collection')
      return this.#data().collections.get(collection)?.entries.size ?? 0
    })
  }

  collections(): Promise<string[]> {
    return this.#run(() => [...this.#data().collections.keys()].sort())
  }

  commit(batch: StoreBatch): Promise<{ readonly seq: number }> {
    return this.#run(() => {
      // Validate and copy everything before touching the data, so a bad batch writes nothing.
      const puts = (batch.puts ?? []).map((entry, i) => {
        checkName(entry.collection, `puts[${i}].collection`)
        checkName(entry.key, `puts[${i}].key`)
        assertStoredValue(entry.value, `puts[${i}] (${entry.collection}/${entry.key})`)
        return { collection: entry.collection, key: entry.key, value: cloneValue(entry.value) }
      })
      const deletes = batch.deletes ?? []
      deletes.forEach((entry, i) => {
        checkName(entry.collection, `deletes[${i}].collection`)
        checkName(entry.key, `deletes[${i}].key`)
      })
      const meta = (batch.meta ?? []).map((entry, i) => {
        checkName(entry.key, `meta[${i}].key`)
        if (entry.value !== null) assertStoredValue(entry.value, `meta[${i}] (${entry.key})`)
        return { key: entry.key, value: entry.value === null ? null : cloneValue(entry.value) }
      })

      const data = this.#data()
      for (const { collection, key, value } of puts) {
        let target = data.collections.get(collection)
        if (target === undefined) {
          target = { entries: new Map(), sorted: null }
          data.collections.set(collection, target)
        }
        if (!target.entries.has(key)) target.sorted = null
        target.entries.set(key, value)
      }
      // Deletes apply after puts: a key both put and deleted in one batch ends up deleted.
      for (const { collection, key } of deletes) {
        const target = data.collections.get(collection)
        if (target === undefined || !target.entries.delete(key)) continue
        target.sorted = null
        if (target.entries.size === 0) data.collections.delete(collection)
      }
      for (const { key, value } of meta) {
        if (value === null) data.meta.delete(key)
        else data.meta.set(key, value)
      }
      data.seq += 1
      return { seq: data.seq }
    })
  }

  getMeta(key: string): Promise<Value | undefined> {
    return this.#run(() => {
      checkName(key, 'meta key')
      const value = this.#data().meta.get(key)
      return value === undefined ? undefined : cloneValue(value)
    })
  }

  close(): Promise<void> {
    this.#closed = true
    return Promise.resolve()
  }

  mapInfo(map: string): Promise<SyncMapInfo | undefined> {
    return this.#run(() => this.#data().sync.info(map))
  }

  syncMaps(): Promise<string[]> {
    return this.#run(() => this.#data().sync.maps())
  }

  getRecords(map: string, keys: readonly string[]): Promise<(SyncRecord | undefined)[]> {
    return this.#run(() => this.#data().sync.get(map, keys))
  }

  scanRecords(map: string, scan: RecordScan): Promise<SyncRecord[]> {
    return this.#run(() => this.#data().sync.scan(map, scan))
  }

  readLog(map: string, afterSeq: number, limit: number): Promise<SyncLogEntry[]> {
    return this.#run(() => this.#data().sync.readLog(map, afterSeq, limit))
  }

  leafSums(map: string): Promise<{ head: number; leaves: [string, HashSum][] }> {
    return this.#run(() => this.#data().sync.leafSums(map))
  }

  applyWrites(requests: readonly WriteRequest[]): Promise<WriteOutcome[]> {
    return this.#run(() => this.#data().sync.apply(requests))
  }

  trimLog(map: string, throughSeq: number): Promise<number> {
    return this.#run(() => this.#data().sync.trimLog(map, throughSeq))
  }

  removeRecords(map: string, keys: readonly string[], still: (record: SyncRecord) => boolean): Promise<string[]> {
    return this.#run(() => this.#data().sync.remove(map, keys, still))
  }

  #data(): Backing {
    return this.#backing
  }

  /** Runs `operation` unless the store is closed; every failure becomes a rejection, never a synchronous throw. */
  #run<T>(operation: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreClosedError('This memory store is closed; open a new one'))
    try {
      return Promise.resolve(operation())
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string') throw new InvalidKeyError(`${what} must be a string, got ${typeof name}`, { what })
}

function sortedKeys(collection: Collection): string[] {
  if (collection.sorted === null) collection.sorted = [...collection.entries.keys()].sort()
  return collection.sorted
}

/**
 * A deep copy of a value. Object keys are defined as own data properties, so `__proto__`
 * stays a field instead of replacing the copy's prototype.
 */
export function cloneValue(value: Value): Value {
  if (typeof value !== 'object' || value === null) return value
  if (value instanceof Date) return new Date(value.getTime())
  if (value instanceof Uint8Array) return new Uint8Array(value)
  if (Array.isArray(value)) return (value as readonly Value[]).map(cloneValue)
  const copy: Record<string, Value> = {}
  for (const key of Object.keys(value)) {
    Object.defineProperty(copy, key, { value: cloneValue((value as Record<string, Value>)[key] as Value), enumerable: true, writable: true, configurable: true })
  }
  return copy
}
