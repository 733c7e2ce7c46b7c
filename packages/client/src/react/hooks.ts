/**
 * The data hooks. Each returns the current value and re-renders when it changes (local
 * writes, remote merges, offline too).
 */
import { useCallback, useSyncExternalStore } from 'react'
import type { Query, RecordValue } from '@outpost/core'
import type { Live } from '../live-store'
import type { LwwMap, Row } from '../lww-map'
import type { ClientStatus } from '../status'
import { useClient } from './provider'

const EMPTY: readonly never[] = Object.freeze([])

/**
 * Subscribes a component to any live value (`map.query(...)`, `map.record(...)`,
 * `client.counter(...)`); `undefined` until the first value arrives. Pass the same object
 * across renders (the SDK caches equal queries, so `map.query(sameQuery)` is stable).
 */
export function useLive<V>(live: Live<V>): V | undefined {
  const subscribe = useCallback((onChange: () => void) => live.subscribe(onChange), [live])
  const getSnapshot = useCallback(() => live.getSnapshot(), [live])
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot)
}

/** The rows of a live query over `map` (empty until the first result). */
export function useQuery<T extends object>(map: LwwMap<T, unknown> | string, query?: Query): readonly Row<T>[] {
  const client = useClient()
  const handle = typeof map === 'string' ? (client.map<RecordValue>(map) as unknown as LwwMap<T, unknown>) : map
  return useLive(handle.query(query)) ?? EMPTY
}

/** The live value of one record (`undefined` while loading, absent or deleted). */
export function useRecord<T extends object>(map: LwwMap<T, unknown> | string, key: string): T | undefined {
  const client = useClient()
  const handle = typeof map === 'string' ? (client.map<RecordValue>(map) as unknown as LwwMap<T, unknown>) : map
  return useLive(handle.record(key)) ?? undefined
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
