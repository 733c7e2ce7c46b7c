/**
 * Standard Schema validation (zod, valibot, arktype...): a map may take a validator, and
 * a write that fails it is rejected with `SchemaValidationError` before anything is sent
 * to the engine, so nothing is stored.
 */
import { SchemaValidationError } from '@outpost/core'
import type { StandardSchemaV1 } from '@standard-schema/spec'

/** A Standard Schema validator of records. */
export type RecordSchema = StandardSchemaV1<unknown, object>

/** One problem the validator found, as carried in `SchemaValidationError.details.issues`. */
export interface SchemaIssue {
  readonly message: string
  /** Where in the record (field names and indexes), when the validator says. */
  readonly path: readonly (string | number)[]
}

/**
 * Validates `value`; returns the schema's output or throws `SchemaValidationError`.
 * Synchronous when the validator is (most are), so a write can show in this tab's live
 * queries before `set` returns; a validator that answers with a promise gives a promise.
 */
export function validateWithSchema(schema: RecordSchema, value: unknown, where: string): object | Promise<object> {
  const result = schema['~standard'].validate(value)
  return result instanceof Promise ? result.then((settled) => outputOf(settled, where)) : outputOf(result, where)
}

function outputOf(result: StandardSchemaV1.Result<object>, where: string): object {
  if (result.issues === undefined) return result.value
  const issues: SchemaIssue[] = result.issues.map((issue) => ({
    message: issue.message,
    path: (issue.path ?? []).map((segment) =>
      typeof segment === 'object' ? toPathSegment(segment.key) : toPathSegment(segment),
    ),
  }))
  const first = issues[0]
  const at = first && first.path.length > 0 ? ` at ${first.path.join('.')}` : ''
  throw new SchemaValidationError(
    `${where} does not match the map's schema${at}: ${first?.message ?? 'invalid'}; nothing was stored, fix the value and write again`,
    { issues },
  )
}

function toPathSegment(key: PropertyKey): string | number {
  return typeof key === 'number' ? key : String(key)
}
