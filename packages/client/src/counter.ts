/**
 * `client.counter(name)`: a PN counter. Increments work offline and merge by per-replica
 * maximum, so a retried or duplicated sync never double-counts.
 */
import type { Value } from '@outpost/core'
import type { EngineSession } from './engine/session'
import { LiveStore, type Live } from './live-store'
import { createWriteHandle, type WriteHandle } from './write-handle'

/** A shared counter. */
export interface Counter extends Live<number> {
  /** The counter's name. */
  readonly name: string
  /** Adds `by` (default 1). */
  increment(by?: number): WriteHandle
  /** Subtracts `by` (default 1). */
  decrement(by?: number): WriteHandle
}

/** Builds the counter handle (see `client.counter`). */
export function createCounter(session: EngineSession, name: string): Counter {
  const live = new LiveStore<number>(session, {
    open: (emit) => session.call('subscribeValue', 'counter', name, '', (value: Value) => emit(typeof value === 'number' ? value : Number(value))),
    close: (id) => session.call('unsubscribeQuery', id),
  })
  return {
    name,
    increment: (by = 1) => createWriteHandle(session, session.call('counterAdd', name, by)),
    decrement: (by = 1) => createWriteHandle(session, session.call('counterAdd', name, -by)),
    subscribe: (listener, onError) => live.subscribe(listener, onError),
    getSnapshot: () => live.getSnapshot(),
    getError: () => live.getError(),
    get: () => live.get(),
  }
}
