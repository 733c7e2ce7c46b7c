/**
 * One map's full-text index: MiniSearch over the declared fields of the map's visible
 * records, plus a digest per indexed record of what it was indexed from. The digests
 * are what make a persisted index reusable: on a cold start the index is restored from its
 * snapshot and only records whose digest differs (or that appeared or left) are
 * re-indexed (see {@link MapSearchIndex.catchUp}). A digest covers the stamps of the
 * declared fields' live registers: a write to another field re-indexes nothing.
 *
 * MiniSearch is imported on first use ({@link loadMiniSearch}), so tabs and engines whose
 * maps declare no search never load it. Why MiniSearch: `bench/search/search-libraries.ts`
 * and the README's Search section.
 */
import type MiniSearchType from 'minisearch'
import type { Options, SearchOptions as MiniSearchOptions } from 'minisearch'
import { SEARCH_LIMITS, compilePredicate, hash64, lwwView, type LwwRecordState, type RecordValue, type SearchSpec, type Value } from '@outpost/core'
import type { AnyState } from '../sync/shape-replica'
import type { SearchHit } from './search-types'

export type { SearchHit }

type MiniSearch = MiniSearchType<IndexedDoc>
type MiniSearchClass = typeof MiniSearchType

/** What MiniSearch is handed: the key and the record; fields are read by {@link textOf}. */
interface IndexedDoc {
  readonly key: string
  readonly record: RecordValue
}


/** The text MiniSearch indexes for a field value: strings as they are, numbers as digits, arrays of those joined; at most `SEARCH_LIMITS.maxFieldChars`. */
export function textOf(value: Value | undefined): string {
  let text = ''
  if (typeof value === 'string') text = value
  else if (typeof value === 'number' || typeof value === 'bigint') text = String(value)
  else if (Array.isArray(value)) text = value.filter((v) => typeof v === 'string' || typeof v === 'number').join(' ')
  return text.length > SEARCH_LIMITS.maxFieldChars ? text.slice(0, SEARCH_LIMITS.maxFieldChars) : text
}

let miniSearchClass: Promise<MiniSearchClass> | undefined

/** MiniSearch, imported once, on first use. */
export function loadMiniSearch(): Promise<MiniSearchClass> {
  miniSearchClass ??= import('minisearch').then((module) => module.default)
  return miniSearchClass
}

/** The MiniSearch options of an index over `fields`: fields are named `f0…fn` inside it, so no field name can collide with an object property. */
function miniSearchOptions(fields: readonly string[]): Options<IndexedDoc> {
  return {
    fields: fields.map((_, i) => `f${i}`),
    idField: 'key',
    extractField: (doc, name) => (name === 'key' ? doc.key : textOf(Object.hasOwn(doc.record, fields[Number(name.slice(1))] as string) ? doc.record[fields[Number(name.slice(1))] as string] : undefined)),
  }
}

/** What {@link MapSearchIndex.serialize} writes and {@link MapSearchIndex.restore} reads. */
interface Snapshot {
  /** {@link SNAPSHOT_FORMAT}: a snapshot of another format is rebuilt, never read. */
  readonly format: string
  readonly fields: readonly string[]
  /** key, digest, key, digest, … of every indexed record. */
  readonly docs: readonly string[]
  readonly index: unknown
}

/** Names the snapshot layout and the library version that wrote it; any change makes old snapshots rebuild. */
export const SNAPSHOT_FORMAT = 'outpost-search-1/minisearch-7'

/** Counters of indexing work, for tests and benchmarks (structural costs, not timings). */
export interface SearchIndexCounters {
  /** Records added to (or re-added to) an index. */
  indexed: number
  /** Records taken out of an index. */
  removed: number
}

/** One map's index (see the module comment). */
export class MapSearchIndex {
  readonly fields: readonly string[]
  readonly #index: MiniSearch
  /** key → digest of what it was indexed from (see #digest). */
  readonly #digests: Map<string, string>
  readonly #counters: SearchIndexCounters
  /** Most records this index holds (see `SEARCH_LIMITS.maxRecords`). */
  maxRecords: number = SEARCH_LIMITS.maxRecords

  private constructor(fields: readonly string[], index: MiniSearch, digests: Map<string, string>, counters: SearchIndexCounters) {
    this.fields = fields
    this.#index = index
    this.#digests = digests
    this.#counters = counters
  }

  /** An empty index over `fields`. */
  static async create(fields: readonly string[], counters: SearchIndexCounters): Promise<MapSearchIndex> {
    const MiniSearch = await loadMiniSearch()
    return new MapSearchIndex(fields, new MiniSearch(miniSearchOptions(fields)), new Map(), counters)
  }

  /** The index a snapshot holds, or undefined when it is of another format or other fields (the caller rebuilds). MiniSearch loads it in slices, yielding between them, so the engine keeps answering other calls meanwhile. */
  static async restore(bytes: Uint8Array, fields: readonly string[], counters: SearchIndexCounters): Promise<MapSearchIndex | undefined> {
    const MiniSearch = await loadMiniSearch()
    let snapshot: Snapshot
    try {
      snapshot = JSON.parse(new TextDecoder().decode(bytes)) as Snapshot
    } catch {
      return undefined
    }
    if (snapshot.format !== SNAPSHOT_FORMAT || !sameFields(snapshot.fields, fields) || !Array.isArray(snapshot.docs)) return undefined
    const digests = new Map<string, string>()
    for (let i = 0; i + 1 < snapshot.docs.length; i += 2) digests.set(snapshot.docs[i] as string, snapshot.docs[i + 1] as string)
    const index = await MiniSearch.loadJSAsync(snapshot.index as Parameters<MiniSearchClass['loadJS']>[0], miniSearchOptions(fields))
    if (index.documentCount !== digests.size) return undefined
    return new MapSearchIndex(fields, index, digests, counters)
  }

  /** Records in the index. */
  get size(): number {
    return this.#digests.size
  }

  /** True when `key` is indexed. */
  has(key: string): boolean {
    return this.#digests.has(key)
  }

  /**
   * The digest of what `state` shows in the declared fields: the stamps of their live
   * registers (one stamp is one write, so equal stamps mean equal text), or undefined when
   * the record is not visible (deleted, or no live field). No record view is built, so
   * checking every record after a restore costs one short hash each.
   */
  #digest(state: LwwRecordState): string | undefined {
    const deleted = state.deleted
    let visible = false
    let joined = ''
    for (const [name, , stamp] of state.fields) {
      const live = deleted === null || stamp > deleted
      if (live) visible = true
      if (live && this.fields.includes(name)) joined += `${name}\u0000${stamp}\u0000`
    }
    return visible ? hash64(joined) : undefined
  }

  /**
   * Brings `key` up to date with its state (undefined: the record left memory). Returns
   * false when it was not added because the index is full.
   */
  set(key: string, state: LwwRecordState | undefined): boolean {
    const had = this.#digests.get(key)
    const digest = state === undefined ? undefined : this.#digest(state)
    if (digest === had) return true
    if (had !== undefined) this.#remove(key)
    if (digest === undefined) return true
    if (this.#digests.size >= this.maxRecords) return false
    this.#index.add({ key, record: lwwView(state as LwwRecordState) as RecordValue })
    this.#digests.set(key, digest)
    this.#counters.indexed++
    return true
  }

  #remove(key: string): void {
    this.#index.discard(key)
    this.#digests.delete(key)
    this.#counters.removed++
  }

  /**
   * Makes the index match `states` (a map's records in memory): re-indexes records whose
   * text changed, adds new ones, removes those that are gone. After a restore this touches
   * only the difference. Returns false when some record could not be added (index full).
   */
  catchUp(states: ReadonlyMap<string, AnyState>): boolean {
    let fits = true
    for (const key of [...this.#digests.keys()]) if (!states.has(key)) this.#remove(key)
    for (const [key, state] of states) if (!this.set(key, state as LwwRecordState)) fits = false
    return fits
  }

  /** Runs one search; `recordOf` reads a record for the filter and the hits. */
  search(spec: SearchSpec, recordOf: (key: string) => RecordValue | undefined): SearchHit[] {
    const predicate = spec.filter === undefined ? undefined : compilePredicate(spec.filter)
    const options: MiniSearchOptions = {
      prefix: spec.prefix ?? true,
      fuzzy: spec.fuzzy === true ? 0.2 : spec.fuzzy === false ? 0 : (spec.fuzzy ?? 0),
      combineWith: spec.match === 'any' ? 'OR' : 'AND',
    }
    if (spec.fields !== undefined) {
      // A search made before the map's declaration changed may name fields this index lacks: those match nothing.
      options.fields = spec.fields.filter((field) => this.fields.includes(field)).map((field) => `f${this.fields.indexOf(field)}`)
      if (options.fields.length === 0) return []
    }
    if (predicate !== undefined) {
      options.filter = (result) => {
        const record = recordOf(result.id as string)
        return record !== undefined && predicate(record)
      }
    }
    const limit = spec.limit ?? SEARCH_LIMITS.defaultLimit
    const hits: SearchHit[] = []
    for (const result of this.#index.search(spec.text, options)) {
      const value = recordOf(result.id as string)
      if (value === undefined) continue
      hits.push({ key: result.id as string, value, score: result.score, terms: result.terms })
      if (hits.length >= limit) break
    }
    return hits
  }

  /** The snapshot of this index (see {@link restore}). */
  serialize(): Uint8Array {
    const docs: string[] = []
    for (const [key, digest] of this.#digests) docs.push(key, digest)
    const snapshot: Snapshot = { format: SNAPSHOT_FORMAT, fields: this.fields, docs, index: this.#index }
    return new TextEncoder().encode(JSON.stringify(snapshot))
  }
}

function sameFields(a: unknown, b: readonly string[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((field, i) => field === b[i])
}
