/**
 * The data model's shared types: branded ids, values, and the serialized state of each
 * CRDT as it is stored and sent. Records never travel as plain objects keyed by user
 * strings: a record's fields are a list of `[name, value, stamp]` entries, so keys such
 * as `__proto__`, `constructor` and `""` are ordinary data everywhere.
 */

/** A replica's identity: one per worker database (or relay node). Bound to the authenticated user by the relay. */
export type ReplicaId = string & { readonly __brand: 'ReplicaId' }

/**
 * An encoded hybrid-logical-clock stamp: fixed-width wall time and counter followed by the
 * replica id, so plain string comparison (`<`) is the stamps' total order.
 * Build and read them only through `clock/hlc.ts`.
 */
export type Stamp = string & { readonly __brand: 'Stamp' }

/** A value Outpost stores and syncs losslessly. `undefined` is not a value: a missing field is absent. */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Date
  | Uint8Array
  | readonly Value[]
  | { readonly [field: string]: Value }

/** A record as the app sees it: top-level fields, each its own LWW register. */
export type RecordValue = { readonly [field: string]: Value }

/** One LWW register of a record: field name, its value, and the stamp of the write that set it. */
export type FieldEntry = readonly [name: string, value: Value, stamp: Stamp]

/**
 * The full CRDT state of one LWW record. A field whose stamp is not newer than `deleted`
 * is dead; the record is visible when at least one field is alive (or it has never been
 * deleted and has fields). Dead fields may be kept so the relay can tell who may see a
 * tombstone; they are never shown to the app.
 */
export interface LwwRecordState {
  /** The field registers, at most one per name, in any order. */
  readonly fields: readonly FieldEntry[]
  /** The stamp of the newest delete, or null when never deleted. */
  readonly deleted: Stamp | null
}

/** The state of one OR-map key: tagged adds and the tags they removed (observed remove). */
export interface OrSetState {
  /** `[tag, value]` pairs: every add has a unique tag (the writer's stamp). */
  readonly adds: readonly (readonly [tag: Stamp, value: Value])[]
  /** Tags removed by a remove that observed them. */
  readonly removes: readonly Stamp[]
}

/** The state of one PN counter: per-replica totals of increments and decrements. */
export type CounterState = readonly (readonly [replica: ReplicaId, increments: number, decrements: number])[]

/** What a collection holds: LWW records, OR sets or PN counters. */
export type CollectionKind = 'lww' | 'or' | 'counter'

/**
 * A state-based change to one key: merging it is idempotent, commutative and associative,
 * so the outbox may replay it, the network may duplicate it, and nothing double-applies.
 * Counters use `map` as the counter name and `key` as `""`.
 */
export type Change =
  | { readonly kind: 'lww'; readonly map: string; readonly key: string; readonly state: LwwRecordState }
  | { readonly kind: 'or'; readonly map: string; readonly key: string; readonly state: OrSetState }
  | { readonly kind: 'counter'; readonly map: string; readonly key: string; readonly state: CounterState }
