/**
 * The contract between the page (`@outpost/client`) and the engine that owns the data
 * (`@outpost/worker`), whichever way the engine runs: in a SharedWorker, in a leader
 * tab's dedicated worker, or in the page itself. Everything here crosses a comlink
 * boundary, so arguments and results are structured-clone data, callbacks are passed
 * with `Comlink.proxy`, and errors are returned as `SerializedError` (see
 * `@outpost/core` `serializeError`) so they keep their class and `code` in the tab.
 */
import type { CollectionKind, OrderBy, Predicate, RecordValue, SerializedError, Shape, Value } from '@outpost/core'
import type { RejectedStatus } from './rejections'

export type { RejectedStatus }

/** How far a write has got: durable in this browser, sent to the relay, committed by the relay. */
export type WriteConcern = 'local' | 'relay' | 'persisted'

/** The relay refused a write for good: it will never be persisted, and its local effect was taken back. */
export interface WriteRejection {
  readonly rejected: SerializedError
}

/** What a write returns once it is durable locally. */
export interface WriteReceipt {
  /** The outbox id of the write; `watchWrite` reports its progress. */
  readonly opId: number
}

/** Connection state machine states (see `sync/connection-state.ts`). */
export type ConnectionState = 'offline' | 'connecting' | 'handshaking' | 'syncing' | 'live' | 'backing-off' | 'auth-expired'

/** Which runtime owns the data. */
export type RuntimeMode = 'shared-worker' | 'leader-tab' | 'in-page'

/** What `client.status` reports. */
export interface EngineStatus {
  readonly mode: RuntimeMode
  readonly connection: ConnectionState
  /** The relay URL the current (or next) connection uses, from the configured list; null without a relay. */
  readonly relayUrl: string | null
  /** True when connected and live. */
  readonly online: boolean
  /** Writes not yet acknowledged by the relay. */
  readonly pendingWrites: number
  /** Age (ms) of the oldest unacknowledged write, or null. */
  readonly oldestPendingMs: number | null
  /** When the last reconciliation completed (ms since epoch), or null. */
  readonly lastSyncAt: number | null
  /** False when running in memory (no IndexedDB): data is lost when the worker stops. */
  readonly durable: boolean
  /** The last connection or sync error, if any. */
  readonly lastError: SerializedError | null
  /** Writes the relay refused for good: how many, the newest error, and the newest refused keys. */
  readonly rejected: RejectedStatus
}

/** Options the engine is started with (sent by the first tab). */
export interface EngineOptions {
  /**
   * Relay URL (`ws://` or `wss://`), or a list to fail over through in order (each tried
   * at once when the previous one fails; backoff only after all failed); omitted → local
   * only. At most 16 URLs; anything else is refused with `ConfigError` (`CONFIG_INVALID`).
   */
  readonly url?: string | readonly string[]
  /** Database name: one engine (and one IndexedDB database) per origin + name. */
  readonly name: string
  /** Which runtime this engine runs in (reported by status). */
  readonly mode: RuntimeMode
  /**
   * The app gives tokens (`auth` callback): the engine waits for the first one before it
   * connects, so the first `hello` carries it instead of failing unauthenticated.
   */
  readonly authRequired?: boolean
}

/** A query over a map, run live in the engine. */
export interface QuerySpec {
  readonly map: string
  readonly where?: Predicate
  readonly orderBy?: OrderBy
  readonly limit?: number
}

/** One row of a query result: the record key and its visible fields. */
export interface Row {
  readonly key: string
  readonly value: RecordValue
}

/** A result or a serialized error: how fallible calls answer across the boundary. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: SerializedError }

/** What a tab learns from a topic subscription: a message, or the relay refusing the subscription. */
export type TopicEvent =
  | {
      readonly type: 'message'
      readonly topic: string
      readonly data: Value
      /** The publisher's replica id (the same for every tab of one browser). */
      readonly from: string
      /** True when it came from another tab of this browser (engine fan-out), false when through the relay. */
      readonly local: boolean
    }
  | { readonly type: 'error'; readonly topic: string; readonly error: SerializedError }

/** What `publishTopic` reports. */
export interface PublishReceipt {
  /** Subscriptions of other tabs/clients of this engine the message was delivered to. */
  readonly local: number
  /** Whether the relay confirmed it ('not-sent' when offline or unconfirmed: ephemeral messages are never queued). */
  readonly remote: 'delivered' | 'not-sent'
  /** Other sessions the relay delivered it to (when `remote` is 'delivered'). */
  readonly delivered?: number
}

/** A lock lease held through the engine. */
export interface LeaseInfo {
  /** The engine's handle on the lease (for extend/release). */
  readonly id: number
  readonly name: string
  /** The fencing token: strictly increases per lock; pass it to the resource you guard. */
  readonly token: number
  /** When the lease ends unless extended (ms since epoch, relay clock corrected to this device). */
  readonly expiresAt: number
}

/** Why a lease ended without `release()`. */
export type LeaseLostReason = 'expired' | 'revoked' | 'disconnected'

/** The relay's fencing check. */
export interface LockStatus {
  /** True when the token is the lock's current, unexpired lease. */
  readonly valid: boolean
  /** The lock's newest token (0 when never granted). */
  readonly current: number
}

/**
 * The engine's API, exposed through comlink. Every method is safe to call from many tabs at once.
 *
 * Writes take an optional `callId`: an id the caller chose for this call. A second call
 * with the same id (a retry after the answer was lost, e.g. re-sent to a new leader tab)
 * returns the first call's receipt and writes nothing, also after an engine restart.
 */
export interface EngineApi {
  /** Resolves when the engine has opened its storage. Idempotent. */
  ready(): Promise<Result<EngineStatus>>

  /** Replaces a record (all fields stamped now; fields not given are removed). Resolves when durable locally. */
  set(map: string, key: string, record: RecordValue, callId?: string): Promise<Result<WriteReceipt>>
  /** Writes only the given fields (field-level LWW). Resolves when durable locally. */
  update(map: string, key: string, patch: RecordValue, callId?: string): Promise<Result<WriteReceipt>>
  /** Deletes a record (a tombstone). Resolves when durable locally. */
  delete(map: string, key: string, callId?: string): Promise<Result<WriteReceipt>>
  /** Reads one record's visible fields. */
  get(map: string, key: string): Promise<Result<RecordValue | undefined>>

  /** Adds/removes a value of an OR-map key. */
  orAdd(map: string, key: string, value: Value, callId?: string): Promise<Result<WriteReceipt>>
  orRemove(map: string, key: string, value: Value, callId?: string): Promise<Result<WriteReceipt>>
  /** Adds `delta` (may be negative) to the PN counter `name` (a key of the `COUNTERS_MAP` collection). */
  counterAdd(name: string, delta: number, callId?: string): Promise<Result<WriteReceipt>>

  /**
   * Runs a live query: `onRows` is called at once with the current rows and again after
   * every local write or remote merge that changes them. Returns an id for `unsubscribeQuery`.
   */
  subscribeQuery(spec: QuerySpec, onRows: (rows: readonly Row[]) => void): Promise<Result<number>>
  /** Ends a live query, record or value subscription (they share one id space). */
  unsubscribeQuery(id: number): Promise<void>
  /** Live value of a record (undefined when absent or deleted). */
  subscribeRecord(map: string, key: string, onValue: (value: RecordValue | undefined) => void): Promise<Result<number>>
  /**
   * Live value of an OR-map key (`map`, `key`) or of a counter (`map` is the counter's
   * name and `key` is ignored: all counters are keys of the one `COUNTERS_MAP` collection).
   */
  subscribeValue(kind: Exclude<CollectionKind, 'lww'>, map: string, key: string, onValue: (value: Value) => void): Promise<Result<number>>

  /** Replicates a shape from the relay (persisted: survives restarts until `unsubscribeShape`). Returns its id. */
  subscribeShape(shape: Shape): Promise<Result<string>>
  unsubscribeShape(id: string): Promise<void>

  /**
   * Calls `onProgress` as write `opId` reaches 'relay' and 'persisted' (at once for states
   * already reached), or once with a {@link WriteRejection} when the relay refused it for good.
   */
  watchWrite(opId: number, onProgress: (event: WriteConcern | WriteRejection) => void): Promise<void>
  /** Current status, and live updates of it. */
  status(): Promise<EngineStatus>
  subscribeStatus(onStatus: (status: EngineStatus) => void): Promise<number>
  unsubscribeStatus(id: number): Promise<void>

  /**
   * Subscribes to a topic (ephemeral pub/sub): messages published by other clients of
   * this engine (other tabs) and, through the relay, by other browsers. `client` names the
   * subscribing client so its own publications are not echoed back. Re-subscribed on the
   * relay after every reconnect. Returns an id for `unsubscribeTopic`.
   */
  subscribeTopic(topic: string, client: string, onEvent: (event: TopicEvent) => void): Promise<Result<number>>
  /** Ends a topic subscription. */
  unsubscribeTopic(id: number): Promise<void>
  /**
   * Publishes to a topic: delivered at once to this engine's other clients' subscriptions
   * (also offline), and through the relay when connected. Never queued.
   */
  publishTopic(topic: string, client: string, data: Value): Promise<Result<PublishReceipt>>

  /**
   * Acquires a lock lease on the relay (waiting up to `wait` ms behind earlier holders).
   * Offline: fails at once with `OfflineError`. `onLost` is called once if the lease ends
   * without `releaseLock` (TTL expiry, revocation, or the connection dropping).
   */
  acquireLock(name: string, ttl: number, wait: number, onLost: (reason: LeaseLostReason) => void): Promise<Result<LeaseInfo>>
  /** Extends a held lease by `ttl` ms from now. */
  extendLock(id: number, ttl: number): Promise<Result<LeaseInfo>>
  /** Releases a held lease (no-op for one already lost or released). */
  releaseLock(id: number): Promise<Result<void>>
  /** Asks the relay whether `token` is the current lease of lock `name`. */
  checkLock(name: string, token: number): Promise<Result<LockStatus>>

  /** Runs the relay's entry processor `processor` atomically on `map/key`; resolves with its result. */
  invoke(map: string, key: string, processor: string, args: Value): Promise<Result<Value>>

  /** Hands the engine a fresh token (the tab's `auth` callback result), e.g. after `auth-expired`. */
  setToken(token: string | undefined): Promise<void>
  /** Registers a tab's token provider; the engine calls it when it needs a token. */
  setAuthProvider(provider: () => Promise<string | undefined>): Promise<void>
  /** Forces offline (true) or lets the engine connect (false); remembered for this database (across reloads and worker restarts) until changed. */
  setOffline(offline: boolean): Promise<void>
}

/**
 * Options a tab sends to a worker host's `init` (added by @outpost/worker): the engine's
 * options plus an optional first token. The first tab's options create the engine; later
 * calls only wait for it.
 */
export interface EngineInitOptions extends EngineOptions {
  /** Token for the first connection (the `auth` callback can replace it later via `setAuthProvider`). */
  readonly token?: string
}

/**
 * What a worker host (`startSharedWorker` / `startDedicatedWorker` in @outpost/worker)
 * exposes on each tab's port: the {@link EngineApi} plus `init`, which must be called
 * first (every other call answers `WORKER_UNAVAILABLE` until it has been).
 */
export interface EngineHostApi extends EngineApi {
  /** Creates the engine with the first caller's options (idempotent) and resolves like `ready()`. */
  init(options: EngineInitOptions): Promise<Result<EngineStatus>>
}
