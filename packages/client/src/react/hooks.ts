/**
 * The data hooks. Each returns the current value and re-renders when it changes (local
 * writes, remote merges, offline too).
 *
 * Errors: a subscription the engine refuses (an invalid `where` gives `PredicateError`,
 * code `INVALID_PREDICATE`) is thrown during render by `useQuery`, `useRecord`,
 * `useCounter` and `useLive`, so the nearest React error boundary shows it with its class
 * and code; remounting the boundary's children subscribes again. `useQueryResult` and
 * `useLiveResult` return the error instead, for components that show it themselves.
 */
import { useCallback, useMemo, useSyncExternalStore } from 'react'
import type { OutpostError, Query, RecordValue } from '@outpost/core'
import type { OutpostClient } from '../client'
import type { Live } from '../live-store'
import type { LwwMap, Row } from '../lww-map'
import type { ClientStatus } from '../status'
import { useClient } from './provider'

const EMPTY: readonly never[] = Object.freeze([])

/** A live value and why it failed, as {@link useLiveResult} returns them. */
export interface LiveResult<V> {
  /** The latest value; `undefined` until the first one arrived (and after an error). */
  readonly value: V | undefined
  /** The typed error that ended the subscription (e.g. `PredicateError`), else `undefined`. */
  readonly error: OutpostError | undefined
}

/** The rows of a live query and why it failed, as {@link useQueryResult} returns them. */
export interface QueryResult<T> {
  /** The rows (empty until the first result, and after an error). */
  readonly rows: readonly Row<T>[]
  /** The typed error of an invalid query (`PredicateError`, `QueryError`), else `undefined`. */
  readonly error: OutpostError | undefined
}

/**
 * Subscribes a component to any live value and returns it with its error, never
 * throwing. Pass the same object across renders (the SDK caches equal queries, so
 * `map.query(sameQuery)` is stable).
 */
export function useLiveResult<V>(live: Live<V>): LiveResult<V> {
  // The error callback also re-renders: an error must not go to the client's onError when a component shows it.
  const subscribe = useCallback((onChange: () => void) => live.subscribe(onChange, onChange), [live])
  // useSyncExternalStore needs the same object while nothing changed.
  const getSnapshot = useMemo(() => {
    let last: LiveResult<V> = { value: undefined, error: undefined }
    return (): LiveResult<V> => {
      const value = live.getSnapshot()
      const error = live.getError()
      if (value !== last.value || error !== last.error) last = { value, error }
      return last
    }
  }, [live])
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot)
}

/**
 * Subscribes a component to any live value (`map.query(...)`, `map.record(...)`,
 * `client.counter(...)`); `undefined` until the first value arrives. A failed subscription
 * is thrown to the nearest error boundary (see {@link useLiveResult} to get it instead).
 */
export function useLive<V>(live: Live<V>): V | undefined {
  const { value, error } = useLiveResult(live)
  if (error) throw error
  return value
}

function mapHandle<T extends object>(client: OutpostClient, map: LwwMap<T, unknown> | string): LwwMap<T, unknown> {
  return typeof map === 'string' ? (client.map<RecordValue>(map) as unknown as LwwMap<T, unknown>) : map
}

/**
 * The rows of a live query over `map` (empty until the first result). An invalid query
 * throws its typed error (`PredicateError`, `QueryError`) to the nearest error boundary;
 * {@link useQueryResult} returns it instead.
 */
export function useQuery<T extends object>(map: LwwMap<T, unknown> | string, query?: Query): readonly Row<T>[] {
  const client = useClient()
  return useLive(mapHandle(client, map).query(query)) ?? EMPTY
}

/** Like {@link useQuery}, but returns `{ rows, error }` instead of throwing an invalid query's error. */
export function useQueryResult<T extends object>(map: LwwMap<T, unknown> | string, query?: Query): QueryResult<T> {
  const client = useClient()
  const { value, error } = useLiveResult(mapHandle(client, map).query(query))
  const rows = value ?? EMPTY
  return useMemo(() => ({ rows, error }), [rows, error])
}

/** The live value of one record (`undefined` while loading, absent or deleted). */
export function useRecord<T extends object>(map: LwwMap<T, unknown> | string, key: string): T | undefined {
  const client = useClient()
  return useLive(mapHandle(client, map).record(key)) ?? undefined
}

/** The client's status (mode, connection, pending writes, last sync, durability). */
export function useStatus(): ClientStatus {
  const client = useClient()
  const status = client.status
  return useSyncExternalStore(status.subscribe, status.get, status.get)
}

/** The live value of a counter (0 until loaded). */
export function useCounter(name: string): number {
  const client = useClient()
  return useLive(client.counter(name)) ?? 0
}
