/**
 * The map cache: each map's records in memory, where live queries, shapes and the
 * committer read them. A map is loaded on first use with one bulk read of its pages;
 * after that memory is the newest state (optimistic local writes included) and the store
 * catches up through the committer. Every change of a key is reported to the listener, so
 * shapes and live queries follow memory exactly.
 *
 * ## Pages before the map
 * A cold start's first query needs what each record looks like, not the records in memory:
 * {@link MapCache.storedPages} hands it the map's pages as stored, undecoded, and keeps them
 * so that the map's load, when something needs it (a write, a shape, a value), decodes
 * those same pages instead of reading them again. While a map is not in memory nothing has
 * changed it (every change goes through memory, which loads it first), so its stored pages
 * are its current state.
 */
import { mergeState, stateEquals, type CollectionKind, type Store } from '@outpost/core'
import { IdbStore } from '../store/idb-store'
import { forEachInPage, type StoredPage } from '../store/page-codec'
import type { AnyState } from '../sync/shape-replica'

/** Every kind of collection, in the order shapes track them. */
export const COLLECTION_KINDS = ['lww', 'or', 'counter'] as const

/** One map's records in memory. */
export interface LoadedMap {
  readonly kind: CollectionKind
  readonly map: string
  /** The store collection its records live in (see {@link collectionOf}). */
  readonly collection: string
  readonly states: Map<string, AnyState>
}

/** The store collection holding the records of `map` of `kind`. */
export function collectionOf(kind: CollectionKind, map: string): string {
  return `r/${kind}/${map}`
}

/** One key of one map of one kind, as a single string (for sets of touched keys). */
export function mapKey(kind: CollectionKind, map: string, key: string): string {
  return `${kind}\u0000${map}\u0000${key}`
}

/** Who hears about the cache's contents: shapes and live queries. */
export interface MapCacheListener {
  /** A map was loaded from the store. */
  loaded(loaded: LoadedMap): void
  /** A key's state in memory changed (`undefined`: it left memory). */
  keyChanged(loaded: LoadedMap, key: string, state: AnyState | undefined): void
}

/** The maps in memory, loaded on first use. */
export class MapCache {
  readonly #store: Store
  readonly #listener: MapCacheListener
  readonly #maps = new Map<string, LoadedMap>()
  readonly #loading = new Map<string, Promise<LoadedMap>>()
  /** Maps whose pages were read (or are being read) for a query, not decoded into memory yet: collection → the read. */
  readonly #pages = new Map<string, Promise<StoredPage[]>>()

  constructor(store: Store, listener: MapCacheListener) {
    this.#store = store
    this.#listener = listener
  }

  /** The map if it is already in memory. */
  get(kind: CollectionKind, map: string): LoadedMap | undefined {
    return this.#maps.get(collectionOf(kind, map))
  }

  /** Every map in memory (read by the inspector). */
  loaded(): LoadedMap[] {
    return [...this.#maps.values()]
  }

  /** The state of `key` in `collection`, if that map is in memory and holds it. */
  stateIn(collection: string, key: string): AnyState | undefined {
    return this.#maps.get(collection)?.states.get(key)
  }

  /** The map, loading it from the store on first use (concurrent callers share one load). */
  async ensure(kind: CollectionKind, map: string): Promise<LoadedMap> {
    const collection = collectionOf(kind, map)
    const loaded = this.#maps.get(collection)
    if (loaded !== undefined) return loaded
    let loading = this.#loading.get(collection)
    if (loading === undefined) {
      loading = this.#load(kind, map, collection)
      this.#loading.set(collection, loading)
    }
    return loading
  }

  /**
   * The map's pages as stored, while the map is not in memory nor loading (IndexedDB only;
   * `undefined` otherwise). Concurrent callers share one read, and the map's load decodes
   * that read (see the module comment). The caller must check that the map is still not in
   * memory once this resolves: if it is, memory may hold changes the pages do not.
   */
  async storedPages(kind: CollectionKind, map: string): Promise<readonly StoredPage[] | undefined> {
    const collection = collectionOf(kind, map)
    const store = this.#store
    if (!(store instanceof IdbStore) || this.#maps.has(collection) || this.#loading.has(collection)) return undefined
    return this.#readPages(store, collection)
  }

  #readPages(store: IdbStore, collection: string): Promise<StoredPage[]> {
    let reading = this.#pages.get(collection)
    if (reading === undefined) {
      reading = store.readPages(collection)
      this.#pages.set(collection, reading)
      // A failed read is forgotten, so the next caller tries again.
      reading.catch(() => this.#pages.delete(collection))
    }
    return reading
  }

  async #load(kind: CollectionKind, map: string, collection: string): Promise<LoadedMap> {
    const store = this.#store
    const states = new Map<string, AnyState>()
    try {
      if (store instanceof IdbStore) {
        const pages = await this.#readPages(store, collection)
        this.#pages.delete(collection)
        for (const page of pages) forEachInPage(page, (key, value) => states.set(key, value as unknown as AnyState))
      } else {
        for (const { key, value } of await store.scan(collection)) states.set(key, value as unknown as AnyState)
      }
    } catch (error) {
      this.#loading.delete(collection)
      throw error
    }
    const loaded: LoadedMap = { kind, map, collection, states }
    this.#maps.set(collection, loaded)
    this.#loading.delete(collection)
    this.#listener.loaded(loaded)
    return loaded
  }

  /** Merges `state` into memory; returns true when it changed anything. */
  merge(loaded: LoadedMap, key: string, state: AnyState): boolean {
    const current = loaded.states.get(key)
    const merged = current === undefined ? state : mergeState(loaded.kind, current as never, state as never)
    if (current !== undefined && stateEquals(loaded.kind, current as never, merged as never)) return false
    loaded.states.set(key, merged)
    this.#listener.keyChanged(loaded, key, merged)
    return true
  }

  /** Sets a key's state outright (`undefined` removes it): a roll-back, a refused write taken back, a re-stamp. */
  replace(loaded: LoadedMap, key: string, state: AnyState | undefined): void {
    if (state === undefined) loaded.states.delete(key)
    else loaded.states.set(key, state)
    this.#listener.keyChanged(loaded, key, state)
  }

  /** Drops a key from memory (move-out / resync): no tombstone, nobody else is told. Returns true when it was there. */
  drop(loaded: LoadedMap, key: string): boolean {
    if (!loaded.states.delete(key)) return false
    this.#listener.keyChanged(loaded, key, undefined)
    return true
  }
}
