/**
 * `client.map(name)`: a map of records, each top-level field its own last-writer-wins
 * register. Writes resolve when durable locally and return a {@link WriteHandle}; reads
 * and live queries run in the engine over local data, so they work offline.
 */
import { assertRecord, type Query, type RecordValue, type Value } from '@outpost/core'
import type { QuerySpec, Row as EngineRow } from '@outpost/worker'
import type { EngineSession } from './engine/session'
import { LiveStore, type Live } from './live-store'
import { stableKey } from './stable-key'
import { validateWithSchema, type RecordSchema } from './schema'
import { createWriteHandle, type WriteHandle } from './write-handle'

/** One row of a query result, typed by the map's record type. */
export interface Row<T> {
  readonly key: string
  readonly value: T
}

/** A live query over one map: `subscribe` for updates, `get` for the current rows. */
export type LiveQuery<T> = Live<readonly Row<T>[]>

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
}

/** What the client gives each map. */
export interface MapContext {
  readonly session: EngineSession
  /** Shared live stores, so hooks and repeated `query()` calls reuse one engine subscription. */
  readonly cache: Map<string, unknown>
}

/** Builds the map handle (see `client.map`). */
export function createLwwMap<T extends object, TInput>(
  context: MapContext,
  name: string,
  schema: RecordSchema | undefined,
): LwwMap<T, TInput> {
  const { session, cache } = context

  const write = (run: () => Promise<{ opId: number }>): WriteHandle => createWriteHandle(session, run())

  const checked = async (record: unknown, where: string): Promise<RecordValue> => {
    const value = schema ? await validateWithSchema(schema, record, where) : record
    assertRecord(value, where)
    return value
  }

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
      return write(async () => session.call('set', name, key, await checked(record, `${name}/${key}`)))
    },
    update(key, patch) {
      return write(async () => {
        if (!schema) return session.call('update', name, key, await checked(patch, `${name}/${key}`))
        // A schema describes whole records: validate the record the patch would produce, then write only the patched fields.
        const current = await session.call('get', name, key)
        const merged = (await checked({ ...current, ...patch }, `${name}/${key}`)) as Record<string, unknown>
        const fields: Record<string, unknown> = {}
        for (const field of Object.keys(patch)) if (Object.hasOwn(merged, field)) fields[field] = merged[field]
        return session.call('update', name, key, await checked(fields, `${name}/${key}`))
      })
    },
    delete(key) {
      return write(() => session.call('delete', name, key))
    },
    async get(key) {
      return (await session.call('get', name, key)) as T | undefined
    },
    query(query = {}) {
      const spec: QuerySpec = { map: name, ...query }
      return cached(`query:${stableKey(spec)}`, () =>
        new LiveStore<readonly Row<T>[]>(session, {
          open: (emit) => session.call('subscribeQuery', spec, (rows: readonly EngineRow[]) => emit(rows as readonly Row<T>[])),
          close: (id) => session.call('unsubscribeQuery', id),
        }),
      )
    },
    async invoke<R>(key: string, processor: string, args: Value = null): Promise<R> {
      return (await session.callWithin(session.timeoutMs * 2, 'invoke', name, key, processor, args)) as R
    },
    record(key) {
      return cached(`record:${stableKey([name, key])}`, () =>
        new LiveStore<T | undefined>(session, {
          open: (emit) => session.call('subscribeRecord', name, key, (value: RecordValue | undefined) => emit(value as T | undefined)),
          close: (id) => session.call('unsubscribeQuery', id),
        }),
      )
    },
  }
}

