/**
 * JSON predicates: validation (with a path to the offending node), compilation to a fast
 * closure, claim binding for authorization filters, and conjunction.
 *
 * Semantics, identical in the worker and the relay:
 * - A field ref is a top-level field name (`'a.b'` is the field named "a.b") or a path
 *   array into nested plain objects (`['address', 'city']`). Fields are read as own
 *   properties only, so `__proto__` and `constructor` are plain fields.
 * - A missing field: `eq`, `lt`, `lte`, `gt`, `gte`, `in`, `startsWith`, `contains` and
 *   `exists` are false; `ne` is true.
 * - Equality is `valuesEqual` (deep; `1` equals `1n`). Range comparisons use
 *   `compareValues` but only between values of the same kind (numbers and bigints are one
 *   kind): `{ lt: ['age', 30] }` does not match an `age` of `null` or `'x'`.
 * - `startsWith` matches strings; `contains` is substring for strings and element
 *   membership (by `valuesEqual`) for arrays.
 * - `{ and: [] }` is true and `{ or: [] }` is false.
 */
import { InvalidValueError, PredicateError } from '../errors'
import type { RecordValue, Value } from '../types'
import { assertValue, compareValues, getField, valueRank, valuesEqual } from '../value'
import type { FieldRef, Predicate } from './types'
import { isPlainObject } from './input'

/** Bounds a predicate must respect, so evaluating or validating it stays cheap. */
export const PREDICATE_LIMITS = {
  /** Deepest nesting of `and`/`or`/`not`. */
  maxDepth: 32,
  /** Most nodes (operators) in one predicate. */
  maxNodes: 1_000,
  /** Most values in one `in` list. */
  maxInValues: 10_000,
  /** Most segments in a field path. */
  maxFieldPathLength: 16,
} as const

type ComparisonOp = 'eq' | 'ne' | 'lt' | 'lte' | 'gt' | 'gte' | 'contains'
const COMPARISONS: readonly ComparisonOp[] = ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'contains']
const OPERATORS = ['and', 'or', 'not', ...COMPARISONS, 'in', 'startsWith', 'exists'] as const
const EXPECTED = `one of ${OPERATORS.map((o) => `"${o}"`).join(', ')}`

/** A predicate that matches every record. */
export const MATCH_ALL: Predicate = Object.freeze({ and: Object.freeze([]) as readonly Predicate[] })
/** A predicate that matches no record. */
export const MATCH_NONE: Predicate = Object.freeze({ or: Object.freeze([]) as readonly Predicate[] })

function join(path: string, segment: string): string {
  return path === '' ? segment : `${path}.${segment}`
}

function describe(input: unknown): string {
  if (input === null) return 'null'
  if (Array.isArray(input)) return 'an array'
  if (typeof input === 'object') {
    const proto: unknown = Object.getPrototypeOf(input)
    if (proto === Object.prototype || proto === null) return 'an object'
    const name: unknown = (proto as { constructor?: { name?: unknown } }).constructor?.name
    return typeof name === 'string' && name !== '' ? `a ${name} instance` : 'a class instance'
  }
  if (typeof input === 'string') return `the string ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '…' : input)}`
  return `${typeof input} ${String(input)}`
}

function fail(path: string, message: string): never {
  throw new PredicateError(`Invalid predicate at ${path === '' ? '(root)' : path}: ${message}`, { path })
}

interface ValidationState {
  nodes: number
}

/**
 * Returns `input` as a validated {@link Predicate} (a fresh copy), or throws
 * {@link PredicateError} whose `details.path` names the offending node, e.g.
 * `and[1].eq[0]` (prefixed with `path` when given, e.g. `where.and[1].eq[0]`).
 */
export function validatePredicate(input: unknown, path = ''): Predicate {
  return validateNode(input, path, 0, { nodes: 0 })
}

function validateNode(input: unknown, path: string, depth: number, state: ValidationState): Predicate {
  if (depth > PREDICATE_LIMITS.maxDepth) fail(path, `nests deeper than ${PREDICATE_LIMITS.maxDepth} levels; flatten the and/or/not tree`)
  if (++state.nodes > PREDICATE_LIMITS.maxNodes) fail(path, `has more than ${PREDICATE_LIMITS.maxNodes} operators; simplify it (e.g. use "in" instead of many "eq")`)
  if (!isPlainObject(input)) fail(path, `expected an object with exactly one operator (${EXPECTED}), got ${describe(input)}`)
  const keys = Object.keys(input)
  if (keys.length !== 1) {
    fail(path, `expected exactly one operator (${EXPECTED}), got ${keys.length === 0 ? 'none' : keys.map((k) => JSON.stringify(k)).join(', ')}`)
  }
  const op = keys[0] as string
  const operand = input[op]
  const at = join(path, op)
  switch (op) {
    case 'and':
    case 'or': {
      if (!Array.isArray(operand)) fail(at, `expected an array of predicates, got ${describe(operand)}`)
      const parts = operand.map((p: unknown, i) => validateNode(p, `${at}[${i}]`, depth + 1, state))
      return op === 'and' ? { and: parts } : { or: parts }
    }
    case 'not':
      return { not: validateNode(operand, at, depth + 1, state) }
    case 'exists':
      return { exists: validateFieldRef(operand, at) }
    case 'in': {
      const [field, list] = validatePair(operand, at, 'a field and an array of values')
      if (!Array.isArray(list)) fail(`${at}[1]`, `expected an array of values, got ${describe(list)}`)
      if (list.length > PREDICATE_LIMITS.maxInValues) fail(`${at}[1]`, `has more than ${PREDICATE_LIMITS.maxInValues} values`)
      list.forEach((v: unknown, i) => checkValue(v, `${at}[1][${i}]`))
      return { in: [field, [...(list as Value[])]] }
    }
    case 'startsWith': {
      const [field, prefix] = validatePair(operand, at, 'a field and a string prefix')
      if (typeof prefix !== 'string') fail(`${at}[1]`, `expected a string prefix, got ${describe(prefix)}`)
      return { startsWith: [field, prefix] }
    }
    default: {
      if (!(COMPARISONS as readonly string[]).includes(op)) {
        fail(path, `unknown operator ${JSON.stringify(op)}; expected ${EXPECTED}`)
      }
      const [field, value] = validatePair(operand, at, 'a field and a value')
      checkValue(value, `${at}[1]`)
      return comparison(op as ComparisonOp, field, value)
    }
  }
}

function comparison(op: ComparisonOp, field: FieldRef, value: Value): Predicate {
  switch (op) {
    case 'eq':
      return { eq: [field, value] }
    case 'ne':
      return { ne: [field, value] }
    case 'lt':
      return { lt: [field, value] }
    case 'lte':
      return { lte: [field, value] }
    case 'gt':
      return { gt: [field, value] }
    case 'gte':
      return { gte: [field, value] }
    case 'contains':
      return { contains: [field, value] }
  }
}

function validatePair(operand: unknown, at: string, what: string): [FieldRef, unknown] {
  if (!Array.isArray(operand) || operand.length !== 2) {
    fail(at, `expected [field, value] (${what}), got ${Array.isArray(operand) ? `an array of ${operand.length}` : describe(operand)}`)
  }
  return [validateFieldRef(operand[0], `${at}[0]`), operand[1]]
}

function validateFieldRef(input: unknown, at: string): FieldRef {
  if (typeof input === 'string') return input
  if (Array.isArray(input)) {
    if (input.length === 0 || input.length > PREDICATE_LIMITS.maxFieldPathLength) {
      fail(at, `expected a field path of 1 to ${PREDICATE_LIMITS.maxFieldPathLength} names, got ${input.length}`)
    }
    input.forEach((segment: unknown, i) => {
      if (typeof segment !== 'string') fail(`${at}[${i}]`, `expected a field name (string), got ${describe(segment)}`)
    })
    return [...(input as string[])]
  }
  return fail(at, `expected a field name (string) or a field path (array of strings), got ${describe(input)}`)
}

function checkValue(input: unknown, at: string): asserts input is Value {
  if (input === undefined) fail(at, 'expected a value, got undefined (to test for a missing field use "exists" inside "not")')
  try {
    assertValue(input, at)
  } catch (error) {
    if (error instanceof InvalidValueError) fail(at, error.message)
    throw error
  }
}

/** Reads a field ref from a record: own properties only, through nested plain objects. */
export function readField(record: RecordValue, field: FieldRef): Value | undefined {
  if (typeof field === 'string') return getField(record, field)
  let current: Value | undefined = record
  for (const segment of field) {
    if (!isNestedRecord(current)) return undefined
    current = getField(current, segment)
  }
  return current
}

function isNestedRecord(value: Value | undefined): value is RecordValue {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date) && !(value instanceof Uint8Array)
}

/** The top-level fields a predicate reads (a nested reference counts as its first segment), sorted. */
export function predicateFields(predicate: Predicate | undefined): string[] {
  const out = new Set<string>()
  const walk = (p: Predicate): void => {
    if ('and' in p) p.and.forEach(walk)
    else if ('or' in p) p.or.forEach(walk)
    else if ('not' in p) walk(p.not)
    else if ('exists' in p) out.add(typeof p.exists === 'string' ? p.exists : (p.exists[0] as string))
    else {
      const ref = (Object.values(p)[0] as readonly [FieldRef, unknown])[0]
      out.add(typeof ref === 'string' ? ref : (ref[0] as string))
    }
  }
  if (predicate !== undefined) walk(predicate)
  return [...out].sort()
}

/** A compiled predicate: evaluate it against many records. */
export type CompiledPredicate = (record: RecordValue) => boolean

const always: CompiledPredicate = () => true

/** Compiles a validated predicate once into a closure that evaluates it fast. */
export function compilePredicate(predicate: Predicate | undefined): CompiledPredicate {
  if (predicate === undefined) return always
  return compile(predicate)
}

function compile(p: Predicate): CompiledPredicate {
  if ('and' in p) {
    const parts = p.and.map(compile)
    if (parts.length === 1) return parts[0] as CompiledPredicate
    return (r) => {
      for (const part of parts) if (!part(r)) return false
      return true
    }
  }
  if ('or' in p) {
    const parts = p.or.map(compile)
    if (parts.length === 1) return parts[0] as CompiledPredicate
    return (r) => {
      for (const part of parts) if (part(r)) return true
      return false
    }
  }
  if ('not' in p) {
    const inner = compile(p.not)
    return (r) => !inner(r)
  }
  if ('exists' in p) {
    const read = reader(p.exists)
    return (r) => read(r) !== undefined
  }
  if ('in' in p) {
    const read = reader(p.in[0])
    const list = p.in[1]
    if (list.every((v) => typeof v === 'string')) {
      const set = new Set(list as readonly string[])
      return (r) => {
        const v = read(r)
        return typeof v === 'string' && set.has(v)
      }
    }
    return (r) => {
      const v = read(r)
      return v !== undefined && list.some((x) => valuesEqual(v, x))
    }
  }
  if ('startsWith' in p) {
    const read = reader(p.startsWith[0])
    const prefix = p.startsWith[1]
    return (r) => {
      const v = read(r)
      return typeof v === 'string' && v.startsWith(prefix)
    }
  }
  if ('contains' in p) {
    const read = reader(p.contains[0])
    const needle = p.contains[1]
    return (r) => {
      const v = read(r)
      if (typeof v === 'string') return typeof needle === 'string' && v.includes(needle)
      if (Array.isArray(v)) return (v as readonly Value[]).some((x) => valuesEqual(x, needle))
      return false
    }
  }
  if ('eq' in p) {
    const read = reader(p.eq[0])
    const x = p.eq[1]
    return (r) => {
      const v = read(r)
      return v !== undefined && valuesEqual(v, x)
    }
  }
  if ('ne' in p) {
    const read = reader(p.ne[0])
    const x = p.ne[1]
    return (r) => {
      const v = read(r)
      return v === undefined || !valuesEqual(v, x)
    }
  }
  if ('lt' in p) return range(p.lt, (c) => c < 0)
  if ('lte' in p) return range(p.lte, (c) => c <= 0)
  if ('gt' in p) return range(p.gt, (c) => c > 0)
  return range(p.gte, (c) => c >= 0)
}

function range([field, x]: readonly [FieldRef, Value], test: (c: number) => boolean): CompiledPredicate {
  const read = reader(field)
  const xKind = valueRank(x)
  return (r) => {
    const v = read(r)
    return v !== undefined && valueRank(v) === xKind && test(compareValues(v, x))
  }
}

function reader(field: FieldRef): (record: RecordValue) => Value | undefined {
  if (typeof field === 'string') return (r) => getField(r, field)
  if (field.length === 1) {
    const name = field[0] as string
    return (r) => getField(r, name)
  }
  return (r) => readField(r, field)
}

/** True when `record` matches `predicate` (compile once with {@link compilePredicate} to evaluate many records). */
export function matches(predicate: Predicate | undefined, record: RecordValue): boolean {
  return compilePredicate(predicate)(record)
}

/** Claims a predicate may reference as `"$name"` (e.g. a verified JWT's payload). */
export type Claims = ReadonlyMap<string, Value> | Readonly<Record<string, Value>>

function lookupClaim(claims: Claims, name: string): Value | undefined {
  if (claims instanceof Map) return claims.get(name)
  const record = claims as Readonly<Record<string, Value>>
  return Object.hasOwn(record, name) ? record[name] : undefined
}

/**
 * Replaces every comparison value that is a string `"$name"` with the claim `name`
 * (`{ eq: ['owner', '$sub'] }` becomes `{ eq: ['owner', 'user-1'] }`); `"$$x"` stands for
 * the literal string `"$x"`. Applies to `eq`/`ne`/`lt`/`lte`/`gt`/`gte`/`contains`
 * values, each element of an `in` list, and `startsWith` prefixes (claim must be a string).
 *
 * Fails closed: a comparison against a missing claim never grants access. It matches
 * nothing, and under a `not` it is replaced so that the `not` matches nothing either
 * (with `and`/`or` being monotone, this gives the least permissive reading).
 */
export function bindClaims(predicate: Predicate, claims: Claims): Predicate {
  return bind(predicate, claims, true)
}

type Bound = { ok: true; value: Value } | { ok: false }

function bindValue(value: Value, claims: Claims): Bound {
  if (typeof value !== 'string' || !value.startsWith('$')) return { ok: true, value }
  if (value.startsWith('$$')) return { ok: true, value: value.slice(1) }
  const claim = lookupClaim(claims, value.slice(1))
  return claim === undefined ? { ok: false } : { ok: true, value: claim }
}

function bind(p: Predicate, claims: Claims, positive: boolean): Predicate {
  // At positive polarity an unbound comparison becomes "false"; under an odd number of `not`s, "true".
  const unbound = positive ? MATCH_NONE : MATCH_ALL
  if ('and' in p) return { and: p.and.map((q) => bind(q, claims, positive)) }
  if ('or' in p) return { or: p.or.map((q) => bind(q, claims, positive)) }
  if ('not' in p) return { not: bind(p.not, claims, !positive) }
  if ('exists' in p) return p
  if ('in' in p) {
    const out: Value[] = []
    for (const v of p.in[1]) {
      const b = bindValue(v, claims)
      if (!b.ok) return unbound
      out.push(b.value)
    }
    return { in: [p.in[0], out] }
  }
  if ('startsWith' in p) {
    const b = bindValue(p.startsWith[1], claims)
    if (!b.ok || typeof b.value !== 'string') return unbound
    return { startsWith: [p.startsWith[0], b.value] }
  }
  for (const op of COMPARISONS) {
    if (op in p) {
      const [field, value] = (p as Record<ComparisonOp, readonly [FieldRef, Value]>)[op]
      const b = bindValue(value, claims)
      if (!b.ok) return unbound
      return comparison(op, field, b.value)
    }
  }
  return p
}

/** The conjunction of the given predicates, skipping `undefined`; `undefined` when none is left. */
export function andPredicates(...predicates: readonly (Predicate | undefined)[]): Predicate | undefined {
  const present = predicates.filter((p): p is Predicate => p !== undefined)
  if (present.length === 0) return undefined
  if (present.length === 1) return present[0]
  return { and: present }
}
