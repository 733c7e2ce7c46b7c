/**
 * The JSON predicate and query language shared by live queries (worker) and shapes (relay).
 * A field reference is a top-level field name, or a path array for nested values
 * (`['address', 'city']`). Comparisons use `compareValues` from `value.ts`.
 */
import type { Value } from '../types'

/** A field of a record: a top-level name, or a path into nested objects. */
export type FieldRef = string | readonly string[]

/** A JSON predicate over one record. */
export type Predicate =
  | { readonly and: readonly Predicate[] }
  | { readonly or: readonly Predicate[] }
  | { readonly not: Predicate }
  | { readonly eq: readonly [FieldRef, Value] }
  | { readonly ne: readonly [FieldRef, Value] }
  | { readonly lt: readonly [FieldRef, Value] }
  | { readonly lte: readonly [FieldRef, Value] }
  | { readonly gt: readonly [FieldRef, Value] }
  | { readonly gte: readonly [FieldRef, Value] }
  | { readonly in: readonly [FieldRef, readonly Value[]] }
  | { readonly startsWith: readonly [FieldRef, string] }
  /** String contains a substring, or array contains an element (by `valuesEqual`). */
  | { readonly contains: readonly [FieldRef, Value] }
  /** The field is present (a `null` value is present). */
  | { readonly exists: FieldRef }

/** One sort key: a field and a direction. Ties are broken by record key, ascending. */
export type OrderBy = readonly (readonly [FieldRef, 'asc' | 'desc'])[]

/** A query over one map's records. */
export interface Query {
  readonly where?: Predicate
  readonly orderBy?: OrderBy
  /** At most this many rows (after ordering). */
  readonly limit?: number
}

/**
 * A shape: a filtered, projected, limited slice of a map that a device replicates.
 * `fields` projects top-level fields (the relay sends only those, and Merkle digests cover
 * only those). With `limit`, the slice is the first `limit` records under `orderBy`.
 */
export interface Shape extends Query {
  readonly map: string
  readonly fields?: readonly string[]
}
