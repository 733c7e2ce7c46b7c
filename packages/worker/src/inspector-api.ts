/**
 * What the engine's read-only inspector reports (`inspect`, `subscribeInspector` in
 * `ENGINE_METHODS`): the state a sync engine usually hides — maps and their record counts,
 * shapes with their cursor, Merkle root and sync state, the outbox and the writes the relay
 * refused, the connection's state machine with its recent transitions, lock leases with
 * their fencing tokens, topics and presence rooms, the runtime mode and the storage.
 *
 * Every list is bounded (see {@link INSPECTOR_LIMITS}); what did not fit is counted in
 * `truncated`. Everything is structured-clone data, so a snapshot crosses the worker
 * boundary as it is. Reading a snapshot changes nothing: no store write, no frame sent, no
 * map loaded into memory.
 */
import type { CollectionKind, SerializedError, Shape } from '@outpost/core'
import type { ConnectionState, LeaseInfo, RuntimeMode } from './engine-api'

/** How many entries each list of a snapshot holds at most. */
export const INSPECTOR_LIMITS = {
  /** Maps listed (loaded ones first). */
  maps: 200,
  /** Shapes listed. */
  shapes: 100,
  /** Pending writes listed (oldest first). */
  outbox: 100,
  /** Refused writes listed (newest first; the engine keeps 50). */
  rejected: 50,
  /** Connection transitions kept (newest last). */
  transitions: 32,
  /** Topics listed. */
  topics: 100,
  /** Leases listed. */
  locks: 100,
  /** Characters of a pending write's preview. */
  preview: 160,
  /** Inspector subscriptions an engine serves at once; a new one beyond it ends the oldest. */
  subscribers: 16,
} as const

/** One step of the connection's state machine, as the engine saw it. */
export interface ConnectionTransition {
  readonly from: ConnectionState
  readonly to: ConnectionState
  /** When (ms since epoch, this device's clock). */
  readonly at: number
  /** The error that came with it (a refused hello, a timeout, a dropped socket), if any. */
  readonly error?: { readonly code: string; readonly message: string }
}

/** One map held by this engine (memory or storage). */
export interface InspectedMap {
  readonly kind: CollectionKind
  readonly map: string
  /** True when the map is in memory (a query, a shape or a write used it). */
  readonly loaded: boolean
  /** Keys stored, tombstones included. */
  readonly stored: number
  /** Visible records (LWW: keys with a live field; other kinds: keys). Null when not in memory. */
  readonly records: number | null
}

/**
 * Where a shape stands with the relay: `local-only` (no relay configured), `waiting` (no
 * session: offline, connecting, backing off), `subscribing` (asked, not yet answered),
 * `reconciling` (answers outstanding) or `synced`.
 */
export type ShapeSyncState = 'local-only' | 'waiting' | 'subscribing' | 'reconciling' | 'synced'

/** One replicated shape. */
export interface InspectedShape {
  /** The shape's canonical key. */
  readonly id: string
  readonly shape: Shape
  /** Keys in the shape on this device. */
  readonly members: number
  /** The root digest of the shape's Merkle tree (16 hex digits). */
  readonly root: string
  /** The relay's resume cursor for the shape, or null (the next sync reconciles by Merkle or slice). */
  readonly cursor: string | null
  readonly sync: ShapeSyncState
}

/** One write waiting for the relay. */
export interface InspectedWrite {
  readonly opId: number
  readonly kind: CollectionKind
  readonly map: string
  readonly key: string
  /** When it was written (ms since epoch, this device's clock). */
  readonly at: number
  /** What it does: `set title, done`, `delete`, `add`, `remove`, `counter`. */
  readonly op: string
  /** The written values as JSON, cut to {@link INSPECTOR_LIMITS.preview} characters. */
  readonly preview: string
  /** Sent on the current connection and not yet acknowledged. */
  readonly sent: boolean
}

/** One write the relay refused for good. */
export interface InspectedRejection {
  readonly opId: number
  readonly map: string
  readonly key: string
  readonly error: SerializedError
  /** When the refusal arrived (ms since epoch). */
  readonly at: number
}

/** One topic this engine's tabs subscribe to. */
export interface InspectedTopic {
  readonly topic: string
  /** Subscriptions of this engine's tabs. */
  readonly subscribers: number
  /** The presence room the topic carries (`presence:<room>`), or null for a plain topic. */
  readonly presenceRoom: string | null
}

/** A bounded list and how many entries did not fit. */
export interface Bounded<T> {
  readonly entries: readonly T[]
  readonly truncated: number
}

/** The engine's state for developer tools; see the module comment. */
export interface InspectorSnapshot {
  /** When it was taken (ms since epoch, this device's clock). */
  readonly at: number
  readonly runtime: {
    readonly mode: RuntimeMode
    /** The database name. */
    readonly database: string
    /** False when running in memory: data is lost when the engine stops. */
    readonly durable: boolean
    /** The store: `indexeddb` or `memory`; null before storage opened. */
    readonly storage: string | null
    /** This device's replica id; null before storage opened. */
    readonly replicaId: string | null
    /** Relay clock minus this device's clock (ms), as measured at `welcome`. */
    readonly clockOffsetMs: number
  }
  readonly connection: {
    readonly state: ConnectionState
    readonly relayUrl: string | null
    readonly lastSyncAt: number | null
    readonly lastError: SerializedError | null
    /** The newest transitions, oldest first (at most {@link INSPECTOR_LIMITS.transitions}). */
    readonly transitions: readonly ConnectionTransition[]
  }
  readonly maps: Bounded<InspectedMap>
  readonly shapes: Bounded<InspectedShape>
  readonly outbox: Bounded<InspectedWrite> & {
    readonly pending: number
    readonly oldestPendingMs: number | null
  }
  readonly rejected: Bounded<InspectedRejection> & { readonly count: number }
  /** Lock leases held through this engine, with their fencing tokens. */
  readonly locks: Bounded<LeaseInfo>
  readonly topics: Bounded<InspectedTopic>
}
