/**
 * `client.map(name)`: a map of records, each top-level field its own last-writer-wins
 * register. Writes resolve when durable locally and return a {@link WriteHandle}; reads
 * and live queries run in the engine over local data, so they work offline.
 *
 * With a schema (`createClient({ schemas })` or `map(name, { schema })`) every write is
 * validated (the whole record a patch would produce), writes carry the schema's version
 * (`_v`, past version 1), and records of an older version are upgraded through the
 * migration chain as they are read (what `get`, `record` and `query` return) and written
 * (a write to an older record writes the upgraded record).
 */
import { assertKey, assertMapName, assertRecord, migrateRecord, stampVersion, withoutVersionField, type MapSchema, type Query, type RecordValue, type Value } from '@outpost/core'
import type { QuerySpec, Row as EngineRow, SearchDeclaration, SearchHit as EngineSearchHit, SearchOptions, SearchSpec, WriteReceipt } from '@outpost/worker'
import type { EngineSession } from './engine/session'
import { LiveStore, type Live } from './live-store'
import type { PendingOp, PendingWrites } from './overlay/pending-writes'
import { QueryOverlay } from './overlay/query-overlay'
import { RecordOverlay } from './overlay/record-overlay'
import { stableKey } from './stable-key'
import { validateWithSchema } from './schema'
import { createWriteHandle, type WriteHandle } from './write-handle'

/** One row of a query result, typed by the map's record type. */
export interface Row<T> {
  readonly key: string
  readonly value: T
}

/** A live query over one map: `subscribe` for updates, `get` for the current rows. */
export type LiveQuery<T> = Live<readonly Row<T>[]>

/** One hit of a live search, best first. */
export interface SearchHit<T> {
  readonly key: string
  readonly value: T
  /** Relevance (BM25+): only the order means something. */
  readonly score: number
  /** The indexed terms that matched, lowercase (after prefix and fuzzy expansion), e.g. to highlight them. */
  readonly terms: readonly string[]
}

/** A live full-text search over one map: ranked hits, kept up to date. */
export type LiveSearch<T> = Live<readonly SearchHit<T>[]>

/** A map of records of type `T` (the schema's output type when the map has a schema). */
export interface LwwMap<T extends object, TInput = T> {
  /** The map's name. */
  readonly name: string
  /** Replaces the record at `key` (fields not given are removed). */
  set(key: string, record: TInput): WriteHandle
  /** Writes only the given fields; concurrent edits of other fields survive. */
  update(key: string, patch: Partial<TInput>): WriteHandle
  /** Deletes the record (a tombstone that syncs). */
  delete(key: string): WriteHandle
  /** The record's visible fields, or `undefined` when absent or deleted. */
  get(key: string): Promise<T | undefined>
  /** A live query (`where`, `orderBy`, `limit`) over the local data. Same query → same object. */
  query(query?: Query): LiveQuery<T>
  /** The live value of one record. Same key → same object. */
  record(key: string): Live<T | undefined>
  /**
   * Runs the relay's entry processor `processor` on `key` atomically (read-modify-write
   * on the relay) and resolves with its result; its write syncs like any other change.
   * Needs the relay: offline it rejects with `OfflineError`. A processor that throws
   * rejects with `ProcessorError`; an unknown one with `NotFoundError`; a denied write
   * with `ForbiddenError`.
   */
  invoke<R = Value>(key: string, processor: string, args?: Value): Promise<R>
  /**
   * A live, ranked full-text search over this map's records on this device (offline too),
   * run in the engine on the map's search index. The map must declare what it indexes:
   * `client.map(name, { search: { fields: ['title', 'notes'] } })` (once per client is
   * enough). Hits update as records change locally or arrive from the relay; a record that
   * is deleted or leaves the device's shapes leaves the hits. Typed errors arrive through
   * `subscribe`'s `onError` / `get()`: `SearchNotDeclaredError`, `UnknownSearchFieldError`,
   * `EmptySearchError` (text with no word), `SearchIndexFullError`, `QueryError`,
   * `PredicateError` (a bad `filter`). Same text and options → same object.
   */
  search(text: string, options?: SearchOptions): LiveSearch<T>
}

/** What the client gives each map. */
export interface MapContext {
  readonly session: EngineSession
  /** Shared live stores, so hooks and repeated `query()` calls reuse one engine subscription. */
  readonly cache: Map<string, unknown>
  /**
   * This client's writes the engine has not answered yet, shown at once by its live
   * queries and records. Undefined: no overlay (live views wait for the worker's rows).
   */
  readonly pending: PendingWrites | undefined
  /** The search declarations made through `client.map(name, { search })`, by map: any handle of the map searches with it. */
  readonly searchDeclarations?: ReadonlyMap<string, SearchDeclaration>
}

/** Builds the map handle (see `client.map`). */
export function createLwwMap<T extends object, TInput>(
  context: MapContext,
  name: string,
  definition: MapSchema | undefined,
): LwwMap<T, TInput> {
  const { session, cache, pending, searchDeclarations } = context

  /**
   * Sends a write whose value is ready (`op` is what live views show meanwhile): this
   * tab's live queries and records show it synchronously, before this returns, and the
   * engine's answer (or refusal) takes it out of the overlay again (see
   * overlay/pending-writes.ts).
   */
  const submit = (key: string, op: PendingOp, send: () => Promise<WriteReceipt>): Promise<WriteReceipt> => {
    // A name or key the engine will refuse is never shown; the engine's typed error reaches the caller.
    if (pending === undefined || !isValidName(name, key)) return send()
    // Sent before it is shown: a listener that writes in response (inside `begin`) must
    // reach the engine after this write, or the engine would stamp them in reverse order.
    const receipt = send()
    const write = pending.begin(name, key, op)
    receipt.then(
      () => pending.settle(write, true),
      () => pending.settle(write, false),
    )
    return receipt
  }

  /**
   * Validates the value (synchronously when there is no schema or the schema answers at
   * once, so the overlay shows the write before `set` returns), then submits it.
   */
  const write = <V>(prepare: () => V | Promise<V>, run: (value: V) => Promise<WriteReceipt>): WriteHandle => {
    let receipt: Promise<WriteReceipt>
    try {
      const value = prepare()
      receipt = value instanceof Promise ? value.then(run) : run(value)
    } catch (error) {
      receipt = Promise.reject(error)
    }
    return createWriteHandle(session, receipt)
  }

  const schema = definition?.schema
  const version = definition?.version ?? 1
  /** Validates a whole record (without its version field) and marks it with the schema's version. */
  const checked = (record: unknown, where: string): RecordValue | Promise<RecordValue> => {
    if (schema === undefined) return asRecord(record, where)
    const bare = typeof record === 'object' && record !== null && !Array.isArray(record) ? withoutVersionField(record as RecordValue) : record
    const value = validateWithSchema(schema, bare, where)
    const versioned = (v: object): RecordValue => stampVersion(asRecord(v, where), version)
    return value instanceof Promise ? value.then(versioned) : versioned(value)
  }

  /** A stored record as this app reads it: upgraded when older than the schema (unchanged when it cannot be). */
  const upgrade = <V>(value: V): V => {
    if (definition === undefined || version <= 1 || value === undefined || value === null) return value
    try {
      return migrateRecord(definition, value as RecordValue, `${name} record`).record as V
    } catch (error) {
      return shownAsStored(value, error)
    }
  }
  const upgradeRows = (rows: readonly EngineRow[]): readonly EngineRow[] =>
    version <= 1 ? rows : rows.map((row) => ({ key: row.key, value: upgrade(row.value) }))

  const cached = <S>(key: string, make: () => S): S => {
    const hit = cache.get(key)
    if (hit !== undefined) return hit as S
    const made = make()
    cache.set(key, made)
    return made
  }

  return {
    name,
    set(key, record) {
      return write(
        () => checked(record, `${name}/${key}`),
        (value) => submit(key, { type: 'set', value: structuredClone(value) }, () => session.call('set', name, key, value)),
      )
    },
    update(key, patch) {
      const send = (fields: RecordValue): Promise<WriteReceipt> =>
        submit(key, { type: 'update', patch: structuredClone(fields) }, () => session.call('update', name, key, fields))
      if (!schema) return write(() => checked(patch, `${name}/${key}`), send)
      const where = `${name}/${key}`
      let replace: RecordValue | undefined
      return write(
        async () => {
          // A schema describes whole records: validate the record the patch would produce, then write only the patched fields.
          const stored = (await session.call('get', name, key)) as RecordValue | undefined
          const current = upgrade(stored)
          const merged = (await checked({ ...current, ...patch }, where)) as Record<string, unknown>
          // An older record is written upgraded, whole (an upgrade may drop fields, which only a set can).
          if (stored !== undefined && current !== stored) {
            replace = merged as RecordValue
            return replace
          }
          const fields: Record<string, unknown> = {}
          for (const field of [...Object.keys(patch), ...(version > 1 ? ['_v'] : [])]) if (Object.hasOwn(merged, field)) fields[field] = merged[field]
          return fields as RecordValue
        },
        (fields) =>
          replace !== undefined
            ? submit(key, { type: 'set', value: structuredClone(fields) }, () => session.call('set', name, key, fields))
            : send(fields),
      )
    },
    delete(key) {
      return write(
        () => undefined,
        () => submit(key, { type: 'delete' }, () => session.call('delete', name, key)),
      )
    },
    async get(key) {
      return upgrade(await session.call('get', name, key)) as T | undefined
    },
    query(query = {}) {
      const spec: QuerySpec = { map: name, ...query }
      return cached(`query:${stableKey(spec)}`, () =>
        new LiveStore<readonly EngineRow[]>(
          session,
          {
            open: (emit) => session.call('subscribeQuery', spec, (rows: readonly EngineRow[]) => emit(upgradeRows(rows))),
            close: (id) => session.call('unsubscribeQuery', id),
          },
          pending && new QueryOverlay(pending, name, query),
        ) as unknown as LiveQuery<T>,
      )
    },
    async invoke<R>(key: string, processor: string, args: Value = null): Promise<R> {
      return (await session.callWithin(session.timeoutMs * 2, 'invoke', name, key, processor, args)) as R
    },
    search(text, options = {}) {
      const declaration = searchDeclarations?.get(name)
      const spec: SearchSpec = { ...options, map: name, text, ...(declaration === undefined ? {} : { declaration }) }
      return cached(`search:${stableKey(spec)}`, () =>
        new LiveStore<readonly EngineSearchHit[]>(session, {
          open: (emit) => session.call('subscribeSearch', spec, (hits: readonly EngineSearchHit[]) => emit(hits)),
          close: (id) => session.call('unsubscribeSearch', id),
        }) as unknown as LiveSearch<T>,
      )
    },
    record(key) {
      return cached(`record:${stableKey([name, key])}`, () =>
        new LiveStore<RecordValue | undefined>(
          session,
          {
            open: (emit) => session.call('subscribeRecord', name, key, (value: RecordValue | undefined) => emit(upgrade(value))),
            close: (id) => session.call('unsubscribeQuery', id),
          },
          pending && isValidName(name, key) ? new RecordOverlay(pending, name, key) : undefined,
        ) as unknown as Live<T | undefined>,
      )
    },
  }
}


function asRecord(value: unknown, where: string): RecordValue {
  assertRecord(value, where)
  return value
}

/** True when the engine accepts the map name (and the key, when given). */
function isValidName(map: string, key?: string): boolean {
  try {
    assertMapName(map)
    if (key !== undefined) assertKey(key)
    return true
  } catch (error) {
    return refusedByEngine(error)
  }
}

/** The engine refuses the same key with the same typed error, which the caller receives. */
function refusedByEngine(_error: unknown): false {
  return false
}

/**
 * A record newer than this app's schema, or one its migration refuses, is shown as stored:
 * reading must not fail, and a write to it is validated (and refused) like any other.
 */
function shownAsStored<V>(value: V, _error: unknown): V {
  return value
}
