/**
 * The relay's schema enforcement: the maps of the app's schema module (`--schema`), checked
 * by the write pipeline on every path a change arrives by (ops, answers to `push`, the HTTP
 * fallback, entry processors, conflict resolvers).
 *
 * Guarantee: for a map with a schema, every record the relay commits validates — the check
 * runs on the *merged* record (the stored record plus the incoming change, plus the map's
 * resolver), inside the store's transaction, so it sees every write committed before it.
 * Per-field constraints therefore hold after any merge, and so do cross-field refinements:
 * when two edits, each valid alone, meet at the relay and their merge breaks a refinement,
 * the one that reaches the relay second is refused (SCHEMA_VALIDATION), and its writer's
 * SDK takes it back like any refused write. A deleted record is not validated (nothing is
 * visible); a record revived by a field write must validate whole.
 *
 * Versions: a record older than the map's schema (its `_v` field, absent = 1) is upgraded
 * by the migration chain when it is written; the upgrade is stored as the relay's own write
 * merged into the same commit, stamped just above the record's newest write, so an edit
 * made later still wins over it. `schema migrate` upgrades the records nobody writes.
 *
 * Modes: `optional` checks maps that have a schema; `strict` also refuses writes to LWW
 * maps without one. Schemas describe LWW records: an OR-map or counter write to a map with
 * a schema is refused.
 */
import {
  ConfigError,
  InvalidValueError,
  SchemaValidationError,
  assertSchemaSet,
  checkRecord,
  lwwView,
  mergeLww,
  stampsAfter,
  upgradeDelta,
  type Change,
  type ReplicaId,
  type LwwRecordState,
  type MapSchema,
  type SchemaSet,
} from '@outpost/core'
import { importUserModule } from '../load-module'

/** How strictly the relay enforces schemas; see the module comment. */
export type SchemaMode = 'optional' | 'strict'

/** The schemas a relay enforces, and how. */
export class SchemaGate {
  readonly #schemas: SchemaSet
  readonly #mode: SchemaMode

  constructor(schemas: SchemaSet, mode: SchemaMode) {
    assertSchemaSet(schemas, 'schemas')
    this.#schemas = schemas
    this.#mode = mode
  }

  /** The enforced schemas, by map. */
  get schemas(): SchemaSet {
    return this.#schemas
  }

  /** The enforcement mode. */
  get mode(): SchemaMode {
    return this.#mode
  }

  /** The schema of `map`, if it has one. */
  schemaOf(map: string): MapSchema | undefined {
    return Object.hasOwn(this.#schemas, map) ? this.#schemas[map] : undefined
  }

  /** Refuses a change at once when its map's schema (or the lack of one, in strict mode) rules it out. */
  admit(change: Change): void {
    const schema = this.schemaOf(change.map)
    if (schema !== undefined && change.kind !== 'lww') {
      throw new InvalidValueError(`Map ${change.map} has a schema, which describes LWW records; this change is ${change.kind}. Use another map name for ${change.kind} data`, { map: change.map })
    }
    if (schema === undefined && this.#mode === 'strict' && change.kind === 'lww') {
      throw new SchemaValidationError(`Map ${change.map} has no schema and this relay runs in strict schema mode; add the map to the relay's schema module (--schema) or write to a map that has one`, {
        map: change.map,
        path: '',
        issues: [{ message: 'no schema for this map', path: [] }],
      })
    }
  }

  /**
   * The record to commit for `after` (the merged state of a key of `map`): `after` itself
   * when it validates, `after` plus the relay's upgrade when it was older than the schema.
   * Throws `SchemaValidationError` naming the failing path.
   */
  check(map: string, after: LwwRecordState, where: string, replica: ReplicaId): LwwRecordState {
    const schema = this.schemaOf(map)
    if (schema === undefined) return after
    const view = lwwView(after)
    const { upgraded } = checkRecord(schema, view, where)
    if (upgraded === undefined || view === undefined) return after
    // Stamped just above the record's newest write (see `stampsAfter`): a later edit still wins over the upgrade.
    const delta = upgradeDelta(view, upgraded, stampsAfter(after, replica))
    return delta === undefined ? after : mergeLww(after, delta)
  }
}

/** Loads the schema module at `path`: its `schemas` export, or its default export. Throws `ConfigError` saying what is wrong. */
export async function loadSchemas(path: string): Promise<SchemaSet> {
  let loaded: Record<string, unknown>
  try {
    loaded = await importUserModule(path)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new ConfigError(`Invalid relay configuration:\n  - schema ${path}: cannot be loaded (${reason})`, { issues: [`schema: ${reason}`] })
  }
  const schemas = loaded['schemas'] ?? loaded['default']
  if (schemas === undefined) {
    throw new ConfigError(`Invalid relay configuration:\n  - schema ${path}: exports no schemas; export const schemas = { map: { schema, version } } (or a default export)`, {
      issues: [`schema ${path}: no "schemas" or default export`],
    })
  }
  assertSchemaSet(schemas, `schema ${path}`)
  return schemas
}
