/**
 * Queries and shapes: validation, ordering, one-shot evaluation, projection, and the
 * canonical key that names a shape identically on every replica.
 */
import { QueryError } from '../errors'
import type { RecordValue, Value } from '../types'
import { compareValues, getField, recordFromEntries } from '../value'
import { compilePredicate, readField, validatePredicate } from './predicate'
import type { FieldRef, OrderBy, Predicate, Query, Shape } from './types'
import { isPlainObject, own } from './input'

/** Bounds a query or shape must respect. */
export const QUERY_LIMITS = {
  /** Largest `limit`. */
  maxLimit: 1_000_000,
  /** Most `orderBy` keys. */
  maxOrderBy: 8,
  /** Most projected `fields`. */
  maxFields: 256,
  /** Longest map name. */
  maxMapNameLength: 256,
  /** Most segments in a field path. */
  maxFieldPathLength: 16,
} as const

/** One row of a query result. */
export interface Row {
  readonly key: string
  readonly value: RecordValue
}

const QUERY_KEYS = ['where', 'orderBy', 'limit'] as const
const SHAPE_KEYS = ['map', 'where', 'fields', 'orderBy', 'limit'] as const

function fail(path: string, message: string): never {
  throw new QueryError(`Invalid query at ${path}: ${message}`, { path })
}

function checkKeys(input: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(input)) {
    if (!allowed.includes(key)) {
      fail(key, `unknown ${what} option ${JSON.stringify(key)}; expected ${allowed.map((k) => `"${k}"`).join(', ')}`)
    }
  }
}

function validateFieldRef(input: unknown, path: string): FieldRef {
  if (typeof input === 'string') return input
  if (Array.isArray(input) && input.length >= 1 && input.length <= QUERY_LIMITS.maxFieldPathLength && input.every((s) => typeof s === 'string')) {
    return [...(input as string[])]
  }
  return fail(path, `expected a field name (string) or a field path (1 to ${QUERY_LIMITS.maxFieldPathLength} strings)`)
}

function validateOrderBy(input: unknown): OrderBy {
  if (!Array.isArray(input)) fail('orderBy', 'expected an array of [field, "asc" | "desc"] pairs')
  if (input.length > QUERY_LIMITS.maxOrderBy) fail('orderBy', `has ${input.length} keys; at most ${QUERY_LIMITS.maxOrderBy} are allowed`)
  return input.map((entry: unknown, i) => {
    const at = `orderBy[${i}]`
    if (!Array.isArray(entry) || entry.length !== 2) fail(at, 'expected a [field, "asc" | "desc"] pair')
    const field = validateFieldRef(entry[0], `${at}[0]`)
    const direction: unknown = entry[1]
    if (direction !== 'asc' && direction !== 'desc') fail(`${at}[1]`, `expected "asc" or "desc", got ${JSON.stringify(direction) ?? String(direction)}`)
    return [field, direction] as const
  })
}

function validateLimit(input: unknown): number {
  if (typeof input !== 'number' || !Number.isInteger(input) || input < 1 || input > QUERY_LIMITS.maxLimit) {
    fail('limit', `expected a positive integer of at most ${QUERY_LIMITS.maxLimit}, got ${typeof input === 'number' ? String(input) : typeof input}`)
  }
  return input
}

function validateQueryParts(input: Record<string, unknown>): { where?: Predicate; orderBy?: OrderBy; limit?: number } {
  const out: { where?: Predicate; orderBy?: OrderBy; limit?: number } = {}
  const where = own(input, 'where')
  if (where !== undefined) out.where = validatePredicate(where, 'where')
  const orderBy = own(input, 'orderBy')
  if (orderBy !== undefined) out.orderBy = validateOrderBy(orderBy)
  const limit = own(input, 'limit')
  if (limit !== undefined) out.limit = validateLimit(limit)
  return out
}

/**
 * Returns `input` as a validated {@link Query} (a fresh copy), or throws {@link QueryError}
 * (or `PredicateError` for `where`) whose `details.path` names the offending part.
 */
export function validateQuery(input: unknown): Query {
  if (!isPlainObject(input)) fail('(root)', 'expected an object { where?, orderBy?, limit? }')
  checkKeys(input, QUERY_KEYS, 'query')
  return validateQueryParts(input)
}

/**
 * Returns `input` as a validated {@link Shape} (a fresh copy), or throws {@link QueryError}
 * (or `PredicateError` for `where`) whose `details.path` names the offending part.
 */
export function validateShape(input: unknown): Shape {
  if (!isPlainObject(input)) fail('(root)', 'expected an object { map, where?, fields?, orderBy?, limit? }')
  checkKeys(input, SHAPE_KEYS, 'shape')
  const map = own(input, 'map')
  if (typeof map !== 'string' || map.length === 0 || map.length > QUERY_LIMITS.maxMapNameLength) {
    fail('map', `expected a map name of 1 to ${QUERY_LIMITS.maxMapNameLength} characters`)
  }
  const shape: { map: string; where?: Predicate; fields?: readonly string[]; orderBy?: OrderBy; limit?: number } = {
    map,
    ...validateQueryParts(input),
  }
  const fields = own(input, 'fields')
  if (fields !== undefined) {
    if (!Array.isArray(fields)) fail('fields', 'expected an array of distinct field names')
    if (fields.length > QUERY_LIMITS.maxFields) fail('fields', `has ${fields.length} names; at most ${QUERY_LIMITS.maxFields} are allowed`)
    const seen = new Set<string>()
    fields.forEach((f: unknown, i) => {
      if (typeof f !== 'string') fail(`fields[${i}]`, 'expected a field name (string)')
      if (seen.has(f)) fail(`fields[${i}]`, `${JSON.stringify(f)} is listed twice; list each field once`)
      seen.add(f)
    })
    shape.fields = [...seen]
  }
  return shape
}

function readRowField(row: Row, field: FieldRef): Value | undefined {
  return typeof field === 'string' ? getField(row.value, field) : readField(row.value, field)
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * A comparator over rows: by each `orderBy` key in turn (`compareValues`; a missing field
 * sorts before every value, `desc` reverses both), ties broken by record key ascending,
 * so the order is total and identical on every replica.
 */
export function compareRows(orderBy: OrderBy | undefined): (a: Row, b: Row) => number {
  const keys = orderBy ?? []
  if (keys.length === 0) return (a, b) => compareKeys(a.key, b.key)
  return (a, b) => {
    for (const [field, direction] of keys) {
      const x = readRowField(a, field)
      const y = readRowField(b, field)
      let c: number
      if (x === undefined) c = y === undefined ? 0 : -1
      else if (y === undefined) c = 1
      else c = compareValues(x, y)
      if (c !== 0) return direction === 'desc' ? -c : c
    }
    return compareKeys(a.key, b.key)
  }
}

/** Runs a (validated) query over rows: filter by `where`, sort by `orderBy` then key, keep the first `limit`. */
export function runQuery(rows: Iterable<Row>, query: Query): Row[] {
  const test = compilePredicate(query.where)
  const out: Row[] = []
  for (const row of rows) if (test(row.value)) out.push({ key: row.key, value: row.value })
  out.sort(compareRows(query.orderBy))
  if (query.limit !== undefined && out.length > query.limit) out.length = query.limit
  return out
}

/** The record restricted to `fields` (missing fields stay missing); without `fields`, the record itself. */
export function projectRecord(record: RecordValue, fields: readonly string[] | undefined): RecordValue {
  if (fields === undefined) return record
  const entries: [string, Value][] = []
  for (const field of fields) {
    const value = getField(record, field)
    if (value !== undefined) entries.push([field, value])
  }
  return recordFromEntries(entries)
}

/**
 * A canonical string naming a shape, identical on every replica for equal shapes:
 * object keys sorted, `fields` sorted (a projection is a set), single-segment field paths
 * written as names, absent options omitted. Non-JSON values are written unambiguously
 * (`12n`, `D(<iso>)`, `B(<hex>)`, `Infinity`), strings always quoted.
 */
export function shapeKey(shape: Shape): string {
  const parts: [string, string][] = [['map', quote(shape.map)]]
  if (shape.where !== undefined) parts.push(['where', canonicalPredicate(shape.where)])
  if (shape.fields !== undefined) parts.push(['fields', `[${[...new Set(shape.fields)].sort(compareKeys).map(quote).join(',')}]`])
  if (shape.orderBy !== undefined) {
    parts.push(['orderBy', `[${shape.orderBy.map(([f, d]) => `[${canonicalField(f)},${quote(d)}]`).join(',')}]`])
  }
  if (shape.limit !== undefined) parts.push(['limit', String(shape.limit)])
  parts.sort((a, b) => compareKeys(a[0], b[0]))
  return `{${parts.map(([k, v]) => `${quote(k)}:${v}`).join(',')}}`
}

function quote(s: string): string {
  return JSON.stringify(s)
}

function canonicalField(field: FieldRef): string {
  if (typeof field === 'string') return quote(field)
  if (field.length === 1) return quote(field[0] as string)
  return `[${field.map(quote).join(',')}]`
}

function canonicalPredicate(p: Predicate): string {
  const [op, operand] = Object.entries(p)[0] as [string, unknown]
  let body: string
  if (op === 'and' || op === 'or') body = `[${(operand as Predicate[]).map(canonicalPredicate).join(',')}]`
  else if (op === 'not') body = canonicalPredicate(operand as Predicate)
  else if (op === 'exists') body = canonicalField(operand as FieldRef)
  else {
    const [field, value] = operand as [FieldRef, Value]
    body = `[${canonicalField(field)},${canonicalValue(value)}]`
  }
  return `{${quote(op)}:${body}}`
}

/** Writes a value canonically (sorted object keys; tagged non-JSON values). */
export function canonicalValue(value: Value): string {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'boolean':
      return String(value)
    case 'number':
      return Object.is(value, -0) ? '0' : String(value)
    case 'bigint':
      return `${value}n`
    case 'string':
      return quote(value)
  }
  if (value instanceof Date) return `D(${value.toISOString()})`
  if (value instanceof Uint8Array) return `B(${Array.from(value, (b) => b.toString(16).padStart(2, '0')).join('')})`
  if (Array.isArray(value)) return `[${(value as readonly Value[]).map(canonicalValue).join(',')}]`
  const record = value as RecordValue
  const keys = Object.keys(record).sort(compareKeys)
  return `{${keys.map((k) => `${quote(k)}:${canonicalValue(record[k] as Value)}`).join(',')}}`
}
