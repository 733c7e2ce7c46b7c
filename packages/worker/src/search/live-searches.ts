/**
 * Live searches: the engine's full-text indexes (one per map that declares search) and the
 * search subscriptions of every tab. Like live queries (`engine/live-queries.ts`) they run
 * over the maps in memory and call back once per microtask after local writes, remote
 * merges and move-outs; a record that is deleted or leaves the device leaves the index.
 *
 * ## Persistence
 * Each index is saved to the store (collection `search/<map>`, key `index`) as a snapshot:
 * MiniSearch's JSON, the declared fields, the format, and per record a digest of the text
 * it was indexed with. Saving is debounced ({@link SEARCH_PERSIST_DELAY_MS} after the last
 * change, at most {@link SEARCH_PERSIST_MAX_WAIT_MS} while changes keep coming) and done on
 * close. On the next start the first search of the map restores the snapshot and re-indexes
 * only the records whose digest differs, or that appeared or left since (whatever happened
 * meanwhile: a crash before the save, remote changes merged before any search). A snapshot
 * of another format or other fields is ignored and the index rebuilt from the records.
 * In-memory engines (no IndexedDB) keep no snapshot.
 *
 * ## Limits
 * A map's index holds at most `SEARCH_LIMITS.maxRecords` records: past that, records are
 * not added and new searches of the map fail with `SearchIndexFullError` (searches already
 * running keep answering from what is indexed). Only the first `SEARCH_LIMITS.maxFieldChars`
 * characters of a field are indexed.
 */
import { SEARCH_LIMITS, SearchIndexFullError, SearchNotDeclaredError, checkSearchFields, lwwView, type LwwRecordState, type SearchDeclaration, type SearchSpec, type Store } from '@outpost/core'
import type { AnyState } from '../sync/shape-replica'
import { safeCall } from '../engine/callbacks'
import type { LoadedMap } from '../engine/map-cache'
import { MapSearchIndex, type SearchHit, type SearchIndexCounters } from './search-index'

/** Quiet time (ms) after the last change before an index snapshot is saved. */
export const SEARCH_PERSIST_DELAY_MS = 2_000
/** Longest time (ms) an index change waits for its snapshot while changes keep coming. */
export const SEARCH_PERSIST_MAX_WAIT_MS = 30_000

/** The store collection holding the index snapshot of `map`. */
export function searchCollectionOf(map: string): string {
  return `search/${map}`
}

const SNAPSHOT_KEY = 'index'

/** Counters of the search subsystem, for tests and benchmarks. @internal */
export interface SearchStats extends SearchIndexCounters {
  /** Indexes restored from a snapshot. */
  restored: number
  /** Indexes built from the records (no usable snapshot). */
  rebuilt: number
  /** Snapshots saved. */
  saved: number
}

/** One map's index and the searches on it. */
interface MapSearch {
  readonly loaded: LoadedMap
  readonly fields: readonly string[]
  /** The index once opened (restored or built). */
  index: MapSearchIndex | undefined
  readonly opening: Promise<MapSearchIndex>
  /** Some record did not fit (see Limits). */
  full: boolean
  /** Keys changed since the searches last ran. */
  readonly dirtyKeys: Set<string>
  /** Changed since the last saved snapshot. */
  unsaved: boolean
  firstUnsavedAt: number
}

interface SearchSub {
  readonly map: string
  readonly spec: SearchSpec
  readonly onHits: (hits: readonly SearchHit[]) => void
  last: readonly SearchHit[]
}

/** What {@link LiveSearches} needs from the engine. */
export interface LiveSearchesParts {
  readonly store: Store
  /** False for an in-memory engine: no snapshot is saved. */
  readonly durable: () => boolean
  readonly now: () => number
  /** Hands out subscription ids. */
  readonly nextId: () => number
  /** Quiet time before a snapshot is saved (default {@link SEARCH_PERSIST_DELAY_MS}). */
  readonly persistDelayMs?: number
  /** Most records one map's index holds (default `SEARCH_LIMITS.maxRecords`). */
  readonly maxRecords?: number
  /** Reports a snapshot that could not be saved (status' lastError). */
  readonly onError: (error: unknown) => void
}

/** The indexes and live searches of one engine. */
export class LiveSearches {
  readonly #parts: LiveSearchesParts
  readonly #maps = new Map<string, MapSearch>()
  readonly #subs = new Map<number, SearchSub>()
  readonly #stats: SearchStats = { indexed: 0, removed: 0, restored: 0, rebuilt: 0, saved: 0 }
  #notifyScheduled = false
  #persistTimer: ReturnType<typeof setTimeout> | undefined
  #saving: Promise<void> = Promise.resolve()
  #closed = false

  constructor(parts: LiveSearchesParts) {
    this.#parts = parts
  }

  /** Counters since start. @internal */
  get stats(): Readonly<SearchStats> {
    return this.#stats
  }

  /**
   * Starts a live search: opens the map's index (restoring its snapshot, or building it),
   * checks the spec against it, and calls `onHits` at once with the current hits. Throws
   * `SearchNotDeclaredError`, `UnknownSearchFieldError` or `SearchIndexFullError`.
   */
  async subscribe(loaded: LoadedMap, spec: SearchSpec, onHits: (hits: readonly SearchHit[]) => void): Promise<number> {
    const search = await this.#open(loaded, spec.declaration)
    const index = await search.opening
    checkSearchFields(spec.map, spec.fields, index.fields)
    if (search.full) throw this.#fullError(search)
    const id = this.#parts.nextId()
    const hits = this.#run(search, index, spec)
    this.#subs.set(id, { map: spec.map, spec, onHits, last: hits })
    safeCall(onHits, hits)
    return id
  }

  /** Ends a live search. */
  unsubscribe(id: number): void {
    this.#subs.delete(id)
  }

  /** A key of a map changed in memory: its index follows, and the map's searches are owed a run. */
  keyChanged(loaded: LoadedMap, key: string, state: AnyState | undefined): void {
    if (loaded.kind !== 'lww') return
    const search = this.#maps.get(loaded.map)
    // Not open yet: opening catches up with memory after its last await.
    if (search?.index === undefined) return
    if (!search.index.set(key, state as LwwRecordState | undefined)) search.full = true
    search.dirtyKeys.add(key)
    this.#changed(search)
  }

  /** Saves every unsaved snapshot now (the engine is closing, or a test asks). */
  async flush(): Promise<void> {
    clearTimeout(this.#persistTimer)
    this.#persistTimer = undefined
    for (const search of this.#maps.values()) if (search.unsaved && search.index !== undefined) await this.#save(search)
    await this.#saving
  }

  /** Saves what is unsaved and stops. */
  async close(): Promise<void> {
    await this.flush()
    this.#closed = true
    this.#subs.clear()
  }

  get #maxRecords(): number {
    return this.#parts.maxRecords ?? SEARCH_LIMITS.maxRecords
  }

  #fullError(search: MapSearch): SearchIndexFullError {
    const map = search.loaded.map
    const limit = this.#maxRecords
    return new SearchIndexFullError(
      `map "${map}" holds more records than its search index may hold (${limit.toLocaleString('en')}); replicate a smaller slice of it with a shape (client.shape({ map: '${map}', where })) so this device holds fewer records`,
      { map, limit, records: search.loaded.states.size },
    )
  }

  /** The map's search, opening its index with `declaration` (or the one it has). */
  async #open(loaded: LoadedMap, declaration: SearchDeclaration | undefined): Promise<MapSearch> {
    const current = this.#maps.get(loaded.map)
    if (current !== undefined && (declaration === undefined || sameFields(current.fields, declaration.fields))) return current
    if (declaration === undefined) {
      throw new SearchNotDeclaredError(
        `map "${loaded.map}" declares no search index; declare the fields to index where the map is created: client.map('${loaded.map}', { search: { fields: ['title'] } }), then search that handle`,
        { map: loaded.map },
      )
    }
    // A new declaration (or other fields than the open index): this one replaces it.
    const fields = [...declaration.fields]
    const search: MapSearch = {
      loaded,
      fields,
      index: undefined,
      opening: undefined as unknown as Promise<MapSearchIndex>,
      full: false,
      dirtyKeys: new Set(),
      unsaved: false,
      firstUnsavedAt: 0,
    }
    ;(search as { opening: Promise<MapSearchIndex> }).opening = this.#restoreOrBuild(search)
    this.#maps.set(loaded.map, search)
    search.opening.catch(() => {
      if (this.#maps.get(loaded.map) === search) this.#maps.delete(loaded.map)
    })
    return search
  }

  async #restoreOrBuild(search: MapSearch): Promise<MapSearchIndex> {
    const { loaded, fields } = search
    let index: MapSearchIndex | undefined
    if (this.#parts.durable()) {
      const bytes = await this.#parts.store.get(searchCollectionOf(loaded.map), SNAPSHOT_KEY)
      if (bytes instanceof Uint8Array) index = await MapSearchIndex.restore(bytes, fields, this.#stats)
    }
    if (index !== undefined) this.#stats.restored++
    else {
      index = await MapSearchIndex.create(fields, this.#stats)
      this.#stats.rebuilt++
    }
    index.maxRecords = this.#maxRecords
    // No await from here on: every change made to memory while loading is in `loaded.states` now.
    const before = this.#stats.indexed + this.#stats.removed
    if (!index.catchUp(loaded.states)) search.full = true
    search.index = index
    if (this.#stats.indexed + this.#stats.removed !== before) this.#changed(search)
    return index
  }

  #run(search: MapSearch, index: MapSearchIndex, spec: SearchSpec): SearchHit[] {
    const states = search.loaded.states
    return index.search(spec, (key) => {
      const state = states.get(key)
      return state === undefined ? undefined : lwwView(state as LwwRecordState)
    })
  }

  /** The map's index changed: its searches run in a microtask, its snapshot is saved later. */
  #changed(search: MapSearch): void {
    if (!search.unsaved) {
      search.unsaved = true
      search.firstUnsavedAt = this.#parts.now()
    }
    this.#schedulePersist()
    if (this.#notifyScheduled) return
    this.#notifyScheduled = true
    queueMicrotask(() => this.#notify())
  }

  #notify(): void {
    this.#notifyScheduled = false
    for (const sub of this.#subs.values()) {
      const search = this.#maps.get(sub.map)
      if (search?.index === undefined || search.dirtyKeys.size === 0) continue
      const hits = this.#run(search, search.index, sub.spec)
      if (sameHits(sub.last, hits, search.dirtyKeys)) continue
      sub.last = hits
      safeCall(sub.onHits, hits)
    }
    for (const search of this.#maps.values()) search.dirtyKeys.clear()
  }

  #schedulePersist(): void {
    if (this.#closed || !this.#parts.durable()) return
    const delay = this.#parts.persistDelayMs ?? SEARCH_PERSIST_DELAY_MS
    let oldest = Infinity
    for (const search of this.#maps.values()) if (search.unsaved) oldest = Math.min(oldest, search.firstUnsavedAt)
    // Debounced, but never past the max wait while changes keep coming.
    if (this.#persistTimer !== undefined && this.#parts.now() - oldest < SEARCH_PERSIST_MAX_WAIT_MS) clearTimeout(this.#persistTimer)
    else if (this.#persistTimer !== undefined) return
    this.#persistTimer = setTimeout(() => {
      this.#persistTimer = undefined
      this.flush().catch((error: unknown) => this.#parts.onError(error))
    }, delay)
  }

  /** Saves one map's snapshot (saves run one at a time). */
  #save(search: MapSearch): Promise<void> {
    const run = async (): Promise<void> => {
      if (!search.unsaved || search.index === undefined || this.#maps.get(search.loaded.map) !== search || !this.#parts.durable()) return
      // Cleared before the snapshot is taken: a change during the commit marks it unsaved again.
      search.unsaved = false
      const bytes = search.index.serialize()
      try {
        await this.#parts.store.commit({ puts: [{ collection: searchCollectionOf(search.loaded.map), key: SNAPSHOT_KEY, value: bytes }] })
        this.#stats.saved++
      } catch (error) {
        search.unsaved = true
        throw error
      }
    }
    this.#saving = this.#saving.then(run, run)
    return this.#saving
  }
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((field, i) => field === b[i])
}

/** True when a new run shows listeners nothing new: the same keys in the same order, none of them changed. */
function sameHits(a: readonly SearchHit[], b: readonly SearchHit[], changed: ReadonlySet<string>): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const key = (a[i] as SearchHit).key
    if (key !== (b[i] as SearchHit).key || changed.has(key)) return false
  }
  return true
}
