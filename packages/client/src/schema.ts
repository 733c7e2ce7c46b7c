/**
 * Standard Schema validation (zod, valibot, arktype...): a map may take a validator, and
 * a write that fails it is rejected with `SchemaValidationError` before anything is sent
 * to the engine, so nothing is stored. The validation itself lives in core, where the
 * relay runs the same code on the records it stores.
 */
export { validateWithSchema } from '@outpost/core'
export type { RecordSchema, SchemaIssue } from '@outpost/core'
