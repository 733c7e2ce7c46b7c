/**
 * Validation of a record against a Standard Schema, the same on both sides: the SDK checks
 * a write before it is stored locally, the relay checks the record a write produces
 * (merged with what it holds) before it commits. A failure is a `SchemaValidationError`
 * whose message names the first failing path and whose `details.issues` lists them all.
 */
import { ConfigError, SchemaValidationError } from '../errors'
import type { RecordValue } from '../types'
import { SCHEMA_VERSION_FIELD, type RecordSchema } from './types'
import type { StandardSchemaV1 } from '@standard-schema/spec'

/** One problem the validator found, as carried in `SchemaValidationError.details.issues`. */
export interface SchemaIssue {
  readonly message: string
  /** Where in the record (field names and indexes), when the validator says. */
  readonly path: readonly (string | number)[]
}

/** Issues kept in an error's details (a validator may report thousands). */
const MAX_ISSUES = 20

/**
 * Validates `value`; returns the schema's output or throws `SchemaValidationError`.
 * Synchronous when the validator is (most are); a validator that answers with a promise
 * gives a promise.
 */
export function validateWithSchema(schema: RecordSchema, value: unknown, where: string): object | Promise<object> {
  const result = schema['~standard'].validate(value)
  return result instanceof Promise ? result.then((settled) => outputOf(settled, where)) : outputOf(result, where)
}

/**
 * Validates `value` synchronously (the relay validates inside the store's transaction).
 * Throws `SchemaValidationError` when invalid, `ConfigError` when the validator is async.
 */
export function validateSync(schema: RecordSchema, value: unknown, where: string): object {
  const result = schema['~standard'].validate(value)
  if (result instanceof Promise) {
    result.catch(() => undefined)
    throw new ConfigError(`The schema of ${where.split('/')[0] ?? where} validates asynchronously; a relay validates inside its store transaction, so relay schemas must be synchronous (no async refinements)`)
  }
  return outputOf(result, where)
}

/** `record` without the reserved version field: what a validator is given. */
export function withoutVersionField(record: RecordValue): RecordValue {
  if (!Object.hasOwn(record, SCHEMA_VERSION_FIELD)) return record
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(record)) {
    if (name !== SCHEMA_VERSION_FIELD) Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true })
  }
  return out as RecordValue
}

function outputOf(result: StandardSchemaV1.Result<object>, where: string): object {
  if (result.issues === undefined) return result.value
  const issues: SchemaIssue[] = result.issues.slice(0, MAX_ISSUES).map((issue) => ({
    message: issue.message.slice(0, 500),
    path: (issue.path ?? []).slice(0, 16).map((segment) => (typeof segment === 'object' ? toPathSegment(segment.key) : toPathSegment(segment))),
  }))
  const first = issues[0]
  const path = first === undefined ? '' : first.path.join('.')
  const at = path === '' ? '' : ` at ${path}`
  throw new SchemaValidationError(
    `${where} does not match the map's schema${at}: ${first?.message ?? 'invalid'}; nothing was stored, fix the value and write again`,
    { path, issues },
  )
}

function toPathSegment(key: PropertyKey): string | number {
  return typeof key === 'number' ? key : String(key).slice(0, 128)
}
