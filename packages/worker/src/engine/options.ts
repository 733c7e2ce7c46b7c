/** The engine's public face: the options `createEngine` takes and the {@link Engine} it returns. */
import type { ReplicaId, Store } from '@outpost/core'
import type { EngineApi, EngineOptions } from '../engine-api'
import type { NetworkEvents, SyncStats, WebSocketConstructor } from '../sync/sync-client'
import type { BackoffOptions } from '../sync/connection-state'
import type { ShapeReplica } from '../sync/shape-replica'
import type { SearchStats } from '../search/live-searches'

/** Options of `createEngine`. */
export interface CreateEngineOptions extends EngineOptions {
  /** IndexedDB factory (default: global `indexedDB`); `null` forces the in-memory store. */
  readonly indexedDB?: IDBFactory | null
  /** WebSocket constructor (default: global `WebSocket`), e.g. the `ws` package in Node. */
  readonly WebSocket?: WebSocketConstructor
  /** Physical clock (ms). */
  readonly now?: () => number
  /** Randomness in [0, 1) for backoff jitter. */
  readonly random?: () => number
  /** Initial auth token. */
  readonly token?: string
  /** Outbox retry interval (ms) for sent but unacknowledged ops. */
  readonly retryMs?: number
  /** Keep-alive ping interval (ms). */
  readonly pingMs?: number
  /** Silence (ms) after which the relay connection is treated as dead and replaced (default 10 s). */
  readonly deadMs?: number
  /** How long (ms) an owed reconciliation reply may make no progress before the session restarts (default 30 s). */
  readonly replyTimeoutMs?: number
  /** While live, how often (ms) each idle shape's Merkle root is checked against the relay's, so a lost live change is repaired without a reconnect (default 30 s). */
  readonly antiEntropyMs?: number
  /** Reconnect backoff. */
  readonly backoff?: BackoffOptions
  /** Source of `online` events (defaults to the global scope); a backing-off connection retries when the network returns. */
  readonly networkEvents?: NetworkEvents
  /** Start offline (no connection until `setOffline(false)`); also the case when `setOffline(true)` was the last word for this database. */
  readonly startOffline?: boolean
  /** Bound (ms) on the relay's answer to a topic publish, lock or invoke request (a lock's `wait` is added). */
  readonly requestTimeoutMs?: number
  /** Quiet time (ms) after the last change before a search index snapshot is saved (default 2 s). */
  readonly searchPersistDelayMs?: number
  /** Most records one map's search index holds (default `SEARCH_LIMITS.maxRecords`, 250,000); past it the map's new searches fail with `SearchIndexFullError`. */
  readonly searchMaxRecords?: number
}

/** The engine: {@link EngineApi} plus lifecycle and introspection for hosts and tests. */
export interface Engine extends EngineApi {
  /** Stops syncing, closes storage. Pending writes stay in the outbox for the next start. */
  close(): Promise<void>
  /** This database's replica id (after `ready()`). */
  readonly replicaId: ReplicaId | undefined
  /** The underlying store (after `ready()`), for tests and benchmarks. @internal */
  readonly store: Store | undefined
  /** Records merged from the relay since start. @internal */
  readonly receivedRecords: number
  /** Frames and op changes sent to the relay since start (all connections). @internal */
  readonly syncStats: SyncStats
  /** Search indexing work since start (records indexed and removed, snapshots restored, rebuilt, saved). @internal */
  readonly searchStats: SearchStats
  /** Resolves when every queued write and buffered remote change is in the store. @internal */
  flush(): Promise<void>
  /** The shape replicas (their trees, members, cursors), for tests. @internal */
  shapeReplicas(): readonly ShapeReplica[]
}
