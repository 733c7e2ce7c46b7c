/**
 * Migrations: a map schema of version `v` carries functions that upgrade a record of
 * version `n` to `n + 1`. A record's version is its reserved {@link SCHEMA_VERSION_FIELD}
 * (absent: version 1). The chain runs on the client as records are read and written, and
 * on the relay as records are written and by the at-rest job (`outpost-server schema migrate`).
 */
import { ConfigError, SchemaValidationError } from '../errors'
import type { RecordValue } from '../types'
import { assertRecord } from '../value'
import { cloneValue } from '../store/memory-store'
import { SCHEMA_VERSION_FIELD, type MapSchema, type SchemaSet } from './types'
import { withoutVersionField } from './validate'

/** Highest schema version accepted (a bound on the migration chain). */
export const MAX_SCHEMA_VERSION = 10_000

/** The schema version `record` was written at; throws `SchemaValidationError` when its version field is not a version. */
export function recordVersion(record: RecordValue, where = 'record'): number {
  if (!Object.hasOwn(record, SCHEMA_VERSION_FIELD)) return 1
  const version = record[SCHEMA_VERSION_FIELD]
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1 || version > MAX_SCHEMA_VERSION) {
    throw new SchemaValidationError(`${where} has ${SCHEMA_VERSION_FIELD} = ${JSON.stringify(version)?.slice(0, 40)}, which is not a schema version (a whole number from 1); ${SCHEMA_VERSION_FIELD} is reserved in maps with a schema`, {
      path: SCHEMA_VERSION_FIELD,
      issues: [{ message: 'not a schema version', path: [SCHEMA_VERSION_FIELD] }],
    })
  }
  return version
}

/** `record` marked as written at `version` (the field is left out at version 1, where absence means 1). */
export function stampVersion(record: RecordValue, version: number): RecordValue {
  const bare = withoutVersionField(record)
  return version <= 1 ? bare : ({ ...bare, [SCHEMA_VERSION_FIELD]: version } as RecordValue)
}

/** What {@link migrateRecord} did. */
export interface Migrated {
  /** The record at the schema's version (with its version field when past 1). */
  readonly record: RecordValue
  /** The version the record was at. */
  readonly from: number
  /** True when a migration ran. */
  readonly changed: boolean
}

/**
 * Upgrades `record` to `map.version` through the migration chain. A record newer than the
 * schema is refused with `SchemaValidationError` (it was written by a newer app than this
 * schema describes). A migration that throws or returns something that is not a record is
 * a `SchemaValidationError` too, naming the step.
 */
export function migrateRecord(map: MapSchema, record: RecordValue, where = 'record'): Migrated {
  const from = recordVersion(record, where)
  if (from > map.version) {
    throw new SchemaValidationError(`${where} was written at schema version ${from}, newer than this schema (version ${map.version}); upgrade this side to the newer schema`, {
      path: SCHEMA_VERSION_FIELD,
      issues: [{ message: `version ${from} is newer than ${map.version}`, path: [SCHEMA_VERSION_FIELD] }],
    })
  }
  if (from === map.version) return { record, from, changed: false }
  let current = withoutVersionField(record)
  for (let version = from; version < map.version; version++) {
    const step = map.migrations?.[version]
    if (step === undefined) throw new ConfigError(`The schema has no migration from version ${version} to ${version + 1}; add migrations[${version}]`)
    let next: unknown
    try {
      next = step(cloneValue(current) as RecordValue)
      assertRecord(next, `${where} migrated to version ${version + 1}`)
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      throw new SchemaValidationError(`${where} could not be migrated from version ${version} to ${version + 1}: ${reason.slice(0, 300)}`, {
        path: '',
        issues: [{ message: reason.slice(0, 300), path: [] }],
      })
    }
    current = withoutVersionField(next)
  }
  return { record: stampVersion(current, map.version), from, changed: true }
}

/**
 * Checks that `value` is a schema set (e.g. a relay's `--schema` module): every entry has a
 * Standard Schema, a version from 1, and a migration for every step below it. Throws one
 * `ConfigError` listing every problem.
 */
export function assertSchemaSet(value: unknown, source: string): asserts value is SchemaSet {
  const issues: string[] = []
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.push(`${source}: must export schemas as an object of map name → { schema, version, migrations? }`)
  } else {
    for (const [map, entry] of Object.entries(value)) {
      const at = `${source}: map ${map}`
      if (typeof entry !== 'object' || entry === null) {
        issues.push(`${at}: must be { schema, version, migrations? }`)
        continue
      }
      const { schema, version, migrations } = entry as Partial<MapSchema>
      if (typeof (schema as { '~standard'?: { validate?: unknown } } | undefined)?.['~standard']?.validate !== 'function') {
        issues.push(`${at}: schema must be a Standard Schema validator (zod, valibot, arktype, ...)`)
      }
      if (typeof version !== 'number' || !Number.isInteger(version) || version < 1 || version > MAX_SCHEMA_VERSION) {
        issues.push(`${at}: version must be a whole number from 1 to ${MAX_SCHEMA_VERSION}`)
        continue
      }
      for (let step = 1; step < version; step++) {
        if (typeof migrations?.[step] !== 'function') issues.push(`${at}: migrations[${step}] (version ${step} → ${step + 1}) is missing; every step below version ${version} needs a function`)
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(`Invalid schemas:\n  - ${issues.join('\n  - ')}`, { issues })
}
