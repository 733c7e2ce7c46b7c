/**
 * `client.orMap(name)`: key → set of values, add-wins; a remove takes away only the adds it
 * observed, so a concurrent add of the same value survives.
 */
import type { Value } from '@outpost/core'
import type { EngineSession } from './engine/session'
import { LiveStore, type Live } from './live-store'
import { stableKey } from './stable-key'
import { createWriteHandle, type WriteHandle } from './write-handle'

/** An observed-remove map of sets of `V`. */
export interface OrMap<V extends Value> {
  /** The map's name. */
  readonly name: string
  /** Adds `value` to the set at `key`. */
  add(key: string, value: V): WriteHandle
  /** Removes `value` from the set at `key` (the adds seen so far). */
  remove(key: string, value: V): WriteHandle
  /** The live set at `key`, as an array. Same key → same object. */
  values(key: string): Live<readonly V[]>
  /** The set at `key` now. */
  get(key: string): Promise<readonly V[]>
}

/** Builds the OR-map handle (see `client.orMap`). */
export function createOrMap<V extends Value>(session: EngineSession, name: string, cache: Map<string, unknown>): OrMap<V> {
  const values = (key: string): Live<readonly V[]> => {
    const cacheKey = `or:${stableKey([name, key])}`
    const hit = cache.get(cacheKey)
    if (hit) return hit as Live<readonly V[]>
    const live = new LiveStore<readonly V[]>(session, {
      open: (emit) =>
        session.call('subscribeValue', 'or', name, key, (value: Value) => emit(Array.isArray(value) ? (value as readonly V[]) : [])),
      close: (id) => session.call('unsubscribeQuery', id),
    })
    cache.set(cacheKey, live)
    return live
  }
  return {
    name,
    add: (key, value) => createWriteHandle(session, session.call('orAdd', name, key, value)),
    remove: (key, value) => createWriteHandle(session, session.call('orRemove', name, key, value)),
    values,
    get: (key) => values(key).get(),
  }
}
