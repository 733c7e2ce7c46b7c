/**
 * The contract between the page (`@outpost/client`) and the engine that owns the data
 * (`@outpost/worker`), whichever way the engine runs: in a SharedWorker, in a leader
 * tab's dedicated worker, or in the page itself. Everything here crosses a comlink
 * boundary, so arguments and results are structured-clone data, callbacks are passed
 * with `Comlink.proxy`, and errors are returned as `SerializedError` (see
 * `@outpost/core` `serializeError`) so they keep their class and `code` in the tab.
 */
import type { OrderBy, Predicate, RecordValue, SerializedError, Value } from '@outpost/core'
import type { ENGINE_METHODS, MethodsOf } from './engine-methods'
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
  /**
   * The schema version of each map the app defines a schema for, announced in `hello`: a
   * relay enforcing other versions refuses the session with SCHEMA_OUTDATED (local data
   * and pending writes are kept; status reports the error).
   */
  readonly schemaVersions?: Readonly<Record<string, number>>
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
 * The engine's API, exposed through comlink: one method per row of
 * {@link ENGINE_METHODS}, whose rows give each method's signature, documentation and
 * how it crosses the boundary. Every method is safe to call from many tabs at once.
 */
export interface EngineApi extends MethodsOf<typeof ENGINE_METHODS> {}

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
