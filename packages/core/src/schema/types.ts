/**
 * One schema definition for the app and the relay: per map, a Standard Schema validator
 * (zod, valibot, arktype, ...) of its records, the version it describes, and the
 * migrations that upgrade records of older versions. The app passes the set to
 * `createClient({ schemas })` and the relay loads the same module (`--schema <module>`).
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { RecordValue } from '../types'

/** A Standard Schema validator of records. */
export type RecordSchema = StandardSchemaV1<unknown, object>

/**
 * Upgrades one record from version `n` to `n + 1`. Pure and deterministic (the relay and
 * every client may run it on the same record and must agree); it gets the visible record
 * without the version field and returns the upgraded record.
 */
export type Migration = (record: RecordValue) => RecordValue

/** One map's schema: its validator, its version, and migrations from older versions. */
export interface MapSchema<S extends RecordSchema = RecordSchema> {
  /** Validates whole records (the visible record after every merge, on the relay). */
  readonly schema: S
  /** The version this schema describes: a whole number from 1; raise it with each incompatible change. */
  readonly version: number
  /**
   * `migrations[n]` upgrades a record of version `n` to `n + 1`, for every `n` from 1 to
   * `version - 1`. A record without the version field is of version 1.
   */
  readonly migrations?: Readonly<Record<number, Migration>>
}

/** The schemas of an app, by map name. */
export type SchemaSet = Readonly<Record<string, MapSchema>>

/**
 * The reserved field that holds a record's schema version in a map whose schema is past
 * version 1. Absent means version 1. Writers never validate it (it is stripped before the
 * validator runs); the SDK writes it, the relay checks and upgrades by it.
 */
export const SCHEMA_VERSION_FIELD = '_v'

/** Identity helper that keeps the literal types of a schema set (for typed maps). */
export function defineSchemas<const S extends Readonly<Record<string, MapSchema>>>(schemas: S): S {
  return schemas
}

/** The output type of a map schema's validator. */
export type SchemaOutput<M extends MapSchema> = StandardSchemaV1.InferOutput<M['schema']>
/** The input type of a map schema's validator. */
export type SchemaInput<M extends MapSchema> = StandardSchemaV1.InferInput<M['schema']>
