/**
 * `client.status`: what the engine reports (mode, connection, pending writes, last sync,
 * durability, last error), readable synchronously and watchable. The client keeps one
 * status subscription for its whole life, so `get()` is always current.
 */
import type { EngineStatus, RuntimeMode } from '@outpost/worker'
import type { EngineSession, TrackedHandle } from './engine/session'
import { reportListenerError } from './engine/transport'

/** The client's status (the engine's, with `mode` saying which runtime this tab uses). */
export type ClientStatus = EngineStatus

/** Reads and watches the status. */
export interface StatusStore {
  /** The latest status (a placeholder with `connection: 'connecting'` until the engine first answers). */
  get(): ClientStatus
  /** Calls `listener` with every new status. Returns the unsubscribe function. */
  subscribe(listener: (status: ClientStatus) => void): () => void
}

/** The status store plus what the client needs to stop it. */
export interface StatusFeed extends StatusStore {
  close(): void
}

/** Starts following the engine's status. */
export function createStatusFeed(session: EngineSession, mode: RuntimeMode, relayUrl: string | null): StatusFeed {
  let current: ClientStatus = {
    mode,
    connection: 'connecting',
    relayUrl,
    online: false,
    pendingWrites: 0,
    oldestPendingMs: null,
    lastSyncAt: null,
    durable: false,
    lastError: null,
    rejected: { count: 0, lastError: null, keys: [] },
  }
  const listeners = new Set<(status: ClientStatus) => void>()
  const publish = (status: EngineStatus): void => {
    current = status.mode === mode ? status : { ...status, mode }
    for (const listener of [...listeners]) {
      try {
        listener(current)
      } catch (error) {
        reportListenerError(error)
      }
    }
  }
  const handle: TrackedHandle = session.track<number>({
    start: async (isCurrent) => {
      const id = await session.call('subscribeStatus', (status: EngineStatus) => {
        if (isCurrent()) publish(status)
      })
      // The status once storage is open (durable or not): the engine may report it only through `ready`.
      session.call('ready').then((ready) => {
        if (isCurrent()) publish(ready)
      }, ignoreReadyFailure)
      return id
    },
    stop: (id) => session.call('unsubscribeStatus', id),
    // The status is best effort; a failure here shows up in the calls the app makes.
    onError: () => {},
  })
  return {
    get: () => current,
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    close: () => handle.close(),
  }
}

/** A storage failure reaches the app through its own calls (and `lastError`); the feed just keeps its last status. */
function ignoreReadyFailure(_error: unknown): void {}
