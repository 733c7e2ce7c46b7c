/**
 * Live queries and live values: subscriptions that run in the engine over the maps in
 * memory and call every subscribed tab back when their answer changes — at once on a
 * local write (optimistic) and on a remote merge. A query keeps an incremental
 * {@link QueryView}, so a write costs O(log n) per query, not a re-run. Changes are
 * collected and delivered once per microtask, so a burst of merges is one callback.
 */
import { QueryView, counterValue, lwwView, orValues, type CollectionKind, type CounterState, type LwwRecordState, type OrSetState, type Query } from '@outpost/core'
import type { Row } from '../engine-api'
import type { AnyState } from '../sync/shape-replica'
import { safeCall } from './callbacks'
import { forEachViewInPage, type StoredPage } from '../store/page-codec'
import type { LoadedMap, MapCache } from './map-cache'

interface QuerySub {
  readonly map: string
  readonly view: QueryView
  readonly onRows: (rows: readonly Row[]) => void
}

interface ValueSub {
  readonly kind: CollectionKind
  readonly map: string
  readonly key: string
  readonly onValue: (value: never) => void
}

/** What a value subscription of `kind` reports for `state`. */
function valueOf(kind: CollectionKind, state: AnyState | undefined): unknown {
  switch (kind) {
    case 'lww':
      return state === undefined ? undefined : lwwView(state as LwwRecordState)
    case 'or':
      return state === undefined ? [] : orValues(state as OrSetState)
    case 'counter':
      return state === undefined ? 0 : counterValue(state as CounterState)
  }
}

/** Every visible record of a map in memory, as rows. */
function* rowsOfMap(loaded: LoadedMap): Generator<Row> {
  for (const [key, state] of loaded.states) {
    const value = lwwView(state as LwwRecordState)
    if (value !== undefined) yield { key, value }
  }
}

/** Every visible record of a map's stored pages, as rows (see `forEachViewInPage`), a page at a time: rows that do not match are garbage at once. */
function* rowsOfPages(pages: readonly StoredPage[]): Generator<Row> {
  const rows: Row[] = []
  for (const page of pages) {
    rows.length = 0
    forEachViewInPage(page, (key, value) => {
      if (value !== undefined) rows.push({ key, value })
    })
    yield* rows
  }
}

/** The live query and value subscriptions of every tab. */
export class LiveQueries {
  /** Reads a key's current state in memory when a value subscription is due. */
  readonly #stateOf: (kind: CollectionKind, map: string, key: string) => AnyState | undefined
  /** Hands out subscription ids (one id space with status subscriptions). */
  readonly #nextId: () => number
  readonly #querySubs = new Map<number, QuerySub>()
  readonly #valueSubs = new Map<number, ValueSub>()
  /** Subscriptions owed a callback: a query's id, or minus a value subscription's id. */
  readonly #dirtyQueries = new Set<number>()
  #notifyScheduled = false

  constructor(stateOf: (kind: CollectionKind, map: string, key: string) => AnyState | undefined, nextId: () => number) {
    this.#stateOf = stateOf
    this.#nextId = nextId
  }

  /**
   * Starts a live query over `query.map`: `onRows` gets the current rows at once. Returns
   * its id. A map not in memory yet is not loaded for it: the rows come from its stored
   * pages, each record read as the app sees it and kept only when it matches (a cold
   * start's first query decodes no record into memory). Later changes reach the query
   * through {@link LiveQueries.keyChanged}, after the map loads.
   */
  async subscribeQuery(maps: MapCache, query: Query & { readonly map: string }, onRows: (rows: readonly Row[]) => void): Promise<number> {
    if (maps.get('lww', query.map) === undefined) {
      const pages = await maps.storedPages('lww', query.map)
      // Loaded meanwhile: memory may already hold writes the pages do not.
      if (pages !== undefined && maps.get('lww', query.map) === undefined) return this.#subscribe(query.map, query, rowsOfPages(pages), onRows)
    }
    const loaded = await maps.ensure('lww', query.map)
    return this.#subscribe(loaded.map, query, rowsOfMap(loaded), onRows)
  }

  #subscribe(map: string, query: Query, rows: Iterable<Row>, onRows: (rows: readonly Row[]) => void): number {
    const view = new QueryView(query)
    view.load(rows)
    const id = this.#nextId()
    this.#querySubs.set(id, { map, view, onRows })
    safeCall(onRows, view.rows())
    return id
  }

  /** Starts a live value of one key of a loaded map: `onValue` gets the current value at once. Returns its id. */
  subscribeValue(loaded: LoadedMap, key: string, onValue: (value: never) => void): number {
    const id = this.#nextId()
    this.#valueSubs.set(id, { kind: loaded.kind, map: loaded.map, key, onValue })
    safeCall(onValue as (v: unknown) => void, valueOf(loaded.kind, loaded.states.get(key)))
    return id
  }

  /** Ends a query or value subscription (they share one id space). */
  unsubscribe(id: number): void {
    this.#querySubs.delete(id)
    this.#valueSubs.delete(id)
    this.#dirtyQueries.delete(id)
    this.#dirtyQueries.delete(-id)
  }

  /** A key changed in memory: the queries and values it touches are owed a callback. */
  keyChanged(loaded: LoadedMap, key: string, state: AnyState | undefined): void {
    if (loaded.kind === 'lww') {
      // Built on first need: most changes (an initial sync's every record) touch no query.
      let view: ReturnType<typeof lwwView> | undefined
      for (const [id, sub] of this.#querySubs) {
        if (sub.map !== loaded.map) continue
        if (state !== undefined) view ??= lwwView(state as LwwRecordState)
        if (sub.view.apply(key, view)) this.#dirtyQueries.add(id)
      }
    }
    for (const [id, sub] of this.#valueSubs) {
      if (sub.kind === loaded.kind && sub.map === loaded.map && sub.key === key) this.#dirtyQueries.add(-id)
    }
  }

  /** Delivers the owed callbacks in a microtask (one per subscription, however many changes). */
  scheduleNotify(): void {
    if (this.#notifyScheduled || this.#dirtyQueries.size === 0) return
    this.#notifyScheduled = true
    queueMicrotask(() => this.#notify())
  }

  #notify(): void {
    this.#notifyScheduled = false
    const ids = [...this.#dirtyQueries]
    this.#dirtyQueries.clear()
    for (const id of ids) {
      if (id > 0) {
        const sub = this.#querySubs.get(id)
        if (sub !== undefined) safeCall(sub.onRows, sub.view.rows())
      } else {
        const sub = this.#valueSubs.get(-id)
        if (sub === undefined) continue
        safeCall(sub.onValue as (v: unknown) => void, valueOf(sub.kind, this.#stateOf(sub.kind, sub.map, sub.key)))
      }
    }
  }

  /** Drops every subscription (the engine is closing). */
  clear(): void {
    this.#querySubs.clear()
    this.#valueSubs.clear()
  }
}
