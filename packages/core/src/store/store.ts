/**
 * The persistence seam every backend implements: the IndexedDB store in the worker, the
 * LMDB and Postgres stores in the relay, and {@link MemoryStore}. A backend is done when
 * `runStoreTests` from `@outpost/core/testing` passes against it.
 *
 * Collections and keys are arbitrary strings (`__proto__`, `""` and unicode included);
 * values are {@link Value}s and come back equal to what was committed.
 */
import type { Value } from '../types'

/** One stored value, addressed by collection and key. */
export interface StoreEntry {
  readonly collection: string
  readonly key: string
  readonly value: Value
}

/** Writes applied together, atomically, by {@link Store.commit}. */
export interface StoreBatch {
  readonly puts?: readonly StoreEntry[]
  readonly deletes?: readonly { readonly collection: string; readonly key: string }[]
  /** Metadata writes in the same transaction; a null value deletes the key. */
  readonly meta?: readonly { readonly key: string; readonly value: Value | null }[]
  /**
   * Every value was already checked where it entered (the worker engine checks a tab's
   * arguments and the relay's changes as they arrive): a store may skip its own check of
   * this batch, so no value is checked twice. Only for callers that hold that promise.
   */
  readonly checked?: boolean
}

/** Paging of {@link Store.scan}. */
export interface ScanOptions {
  /** Start strictly after this key (the last key of the previous page). */
  readonly after?: string
  /** At most this many entries (a positive integer); all when absent. */
  readonly limit?: number
}

/** A durable (or, for {@link MemoryStore}, in-memory) key-value store of collections. */
export interface Store {
  /** 'memory' | 'indexeddb' | 'lmdb' | 'postgres' … */
  readonly name: string
  /** The value under `key`, or undefined when there is none. */
  get(collection: string, key: string): Promise<Value | undefined>
  /** The values under `keys`, in the same order, undefined for misses. */
  getMany(collection: string, keys: readonly string[]): Promise<(Value | undefined)[]>
  /** A page of a collection's entries in the store's stable key order; pass the last key seen as `after` for the next page. Paging visits every entry exactly once. */
  scan(collection: string, options?: ScanOptions): Promise<StoreEntry[]>
  /** How many entries the collection holds. */
  count(collection: string): Promise<number>
  /** Names of collections that hold at least one entry. */
  collections(): Promise<string[]>
  /** Applies the whole batch atomically and resolves only once it is durable; validates every value first (InvalidValueError, nothing written), unless the batch says it is {@link StoreBatch.checked}. Returns a sequence number that strictly increases per store, across reopen. */
  commit(batch: StoreBatch): Promise<{ readonly seq: number }>
  /** The metadata value under `key`, or undefined when there is none. */
  getMeta(key: string): Promise<Value | undefined>
  /** After close every call rejects with StoreClosedError. */
  close(): Promise<void>
}
