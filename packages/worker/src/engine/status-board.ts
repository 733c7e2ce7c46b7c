/**
 * The status board: who listens to the engine's status (`client.status()` subscribers in
 * every tab) and when they hear. Most changes are coalesced into one report per
 * microtask; a connection change is reported at once, so a state that lasts a microtask
 * (e.g. `auth-expired`) is still seen.
 */
import type { EngineStatus } from '../engine-api'
import type { Outbox } from '../outbox'
import type { RejectionLog } from '../rejections'
import type { SyncClient } from '../sync/sync-client'
import { safeCall } from './callbacks'
import type { EngineState } from './start-up'

/** The engine's status at `now` from its pieces (`sync` is undefined until storage opened). */
export function readStatus(mode: EngineStatus['mode'], sync: SyncClient | undefined, outbox: Outbox, state: EngineState, rejections: RejectionLog, now: number): EngineStatus {
  const connection = sync?.state ?? 'offline'
  return {
    mode,
    connection,
    relayUrl: sync?.url ?? null,
    online: connection === 'live',
    pendingWrites: outbox.pendingCount,
    oldestPendingMs: outbox.oldestPendingMs(now),
    lastSyncAt: state.lastSyncAt,
    durable: state.durable,
    lastError: state.lastError,
    rejected: rejections.status(),
  }
}

/** The status subscribers, and the reports they get. */
export class StatusBoard {
  /** Computes the current status. */
  readonly #read: () => EngineStatus
  readonly #subs = new Map<number, (status: EngineStatus) => void>()
  #scheduled = false

  constructor(read: () => EngineStatus) {
    this.#read = read
  }

  /** The current status. */
  current(): EngineStatus {
    return this.#read()
  }

  /** Adds a subscriber under `id`; it gets the current status at once. */
  subscribe(id: number, onStatus: (status: EngineStatus) => void): void {
    this.#subs.set(id, onStatus)
    safeCall(onStatus, this.#read())
  }

  unsubscribe(id: number): void {
    this.#subs.delete(id)
  }

  /** Reports the status to every subscriber in a microtask (once, however many changes came before it). */
  schedule(): void {
    if (this.#scheduled || this.#subs.size === 0) return
    this.#scheduled = true
    queueMicrotask(() => {
      this.#scheduled = false
      this.broadcast()
    })
  }

  /** Reports the status to every subscriber now. */
  broadcast(): void {
    const status = this.#read()
    for (const fn of this.#subs.values()) safeCall(fn, status)
  }

  /** Drops every subscriber (the engine is closing). */
  clear(): void {
    this.#subs.clear()
  }
}
