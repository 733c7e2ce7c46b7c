/** Checks shared by the validators of predicates, queries, shapes and searches. */

/** True for `{}`-style objects (plain or null prototype), not arrays, class instances or null. */
export function isPlainObject(input: unknown): input is Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return false
  const proto = Object.getPrototypeOf(input)
  return proto === Object.prototype || proto === null
}

/** `input[key]` when it is the object's own property (never an inherited one), else undefined. */
export function own(input: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(input, key) ? input[key] : undefined
}
