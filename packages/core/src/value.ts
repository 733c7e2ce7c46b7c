/**
 * Values: what may be stored, how two values compare, and when they are equal.
 * The same functions run in the worker and the relay, so a predicate or an `orderBy`
 * means the same thing on both sides.
 */
import { InvalidValueError } from './errors'
import type { RecordValue, Value } from './types'
import { isWellFormed, printable } from './unicode'

/** Limits a single value must respect (the codec enforces its own, wider, frame limits). */
export const VALUE_LIMITS = {
  /**
   * Deepest nesting of arrays/objects inside one field value (or OR-set value, topic
   * message, processor argument), counted from the value itself: `[[1]]` nests 2 levels.
   * The one depth limit: the write API and the relay refuse a deeper value with
   * INVALID_VALUE, and every envelope below leaves room for a value at the limit.
   */
  maxDepth: 32,
  /**
   * Levels Outpost itself may wrap around a value, at most: a stored LWW state is
   * `{ fields: [[name, value, stamp]] }` (3), a worker outbox entry
   * `{ change: { state: { fields: [[name, value, stamp]] } } }` (5), a protocol frame
   * `{ changes: [{ state: { fields: [[name, value, stamp]] } }] }` (6). Stores accept entries
   * nested up to `maxDepth + envelopeDepth`, so whatever the write API accepted is storable.
   */
  envelopeDepth: 8,
  /**
   * A dead field (overwritten by a later `set` or `delete`) keeps its last value only while
   * that value weighs at most this much (see {@link valueWeight}); a heavier one is kept as
   * `null`. Small values (owners, statuses) still tell who may see a tombstone; a replaced
   * 700 KB field does not keep the record over the size limit for the tombstone horizon.
   */
  deadValueWeight: 256,
} as const

/**
 * A deterministic, cheap weight of a value, close to its encoded size (string and byte
 * lengths, 8 per number, keys included), computed only up to `cap`: the walk stops once it
 * exceeds it. Every replica computes the same weight, so a merge that depends on it stays a merge.
 */
export function valueWeight(value: Value, cap: number): number {
  let weight = 0
  const stack: Value[] = [value]
  while (stack.length > 0 && weight <= cap) {
    const v = stack.pop() as Value
    if (v === null || typeof v === 'boolean') weight += 1
    else if (typeof v === 'number' || typeof v === 'bigint' || v instanceof Date) weight += 8
    else if (typeof v === 'string') weight += v.length + 1
    else if (v instanceof Uint8Array) weight += v.length + 1
    else if (Array.isArray(v)) {
      weight += 1
      for (const item of v) stack.push(item)
    } else {
      weight += 1
      for (const key of Object.keys(v)) {
        weight += key.length + 1
        stack.push((v as Record<string, Value>)[key] as Value)
      }
    }
  }
  return weight
}

/**
 * Throws {@link InvalidValueError} unless `value` is a {@link Value}: JSON-like data plus
 * `Date`, `Uint8Array` and `bigint`, without `undefined`, functions, symbols, cycles,
 * class instances or lone surrogates (in strings or object keys), nested at most
 * {@link VALUE_LIMITS.maxDepth} levels. `path` names the place for the message (e.g. `todos/t1.tags[2]`).
 */
export function assertValue(value: unknown, path = 'value'): asserts value is Value {
  checkValue(value, path, 0, VALUE_LIMITS.maxDepth)
}

/** Throws unless `record` is a plain object whose every field name is well-formed and every field a {@link Value}. */
export function assertRecord(record: unknown, path = 'record'): asserts record is RecordValue {
  if (typeof record !== 'object' || record === null || Array.isArray(record) || record instanceof Date || record instanceof Uint8Array) {
    throw new InvalidValueError(`${path} must be a plain object of fields`, { path })
  }
  // Each field is a value of its own: the depth limit counts from the field, not the record.
  checkValue(record, path, -1, VALUE_LIMITS.maxDepth)
}

/** Throws {@link InvalidValueError} unless `name` can be a field name: a well-formed string. */
export function assertFieldName(name: unknown, path = 'field'): asserts name is string {
  if (typeof name !== 'string') throw new InvalidValueError(`${path} must be a string field name, got ${typeof name}`, { path })
  if (!isWellFormed(name)) throw loneSurrogate(`${path} name ${printable(name.slice(0, 64))}`, path)
}

/**
 * Throws unless `value` can be stored: a {@link Value} nested at most
 * `maxDepth + envelopeDepth` levels (see {@link VALUE_LIMITS}). Stores call this on every
 * put, so one rule decides what the write path and the store accept.
 */
export function assertStoredValue(value: unknown, path = 'value'): asserts value is Value {
  checkValue(value, path, 0, VALUE_LIMITS.maxDepth + VALUE_LIMITS.envelopeDepth)
}

function loneSurrogate(what: string, path: string): InvalidValueError {
  return new InvalidValueError(`${what} contains a lone surrogate (half of a UTF-16 pair), which other replicas would receive as U+FFFD; use well-formed text (e.g. String.prototype.toWellFormed())`, { path })
}

/**
 * `base` followed by the array indexes and field names of `at`, as in `todos/t1.tags[2]`.
 * Built only for an error message: a valid value (every store put checks one) costs no strings.
 */
function pathOf(base: string, at: readonly (string | number)[]): string {
  let path = base
  for (const step of at) path += typeof step === 'number' ? `[${step}]` : `.${step}`
  return path
}

/** `at`: the indexes and field names from `base` down to `value`, pushed and popped as the walk goes. */
function checkValue(value: unknown, base: string, depth: number, limit: number, at: (string | number)[] = []): void {
  if (depth > limit) {
    const path = pathOf(base, at)
    throw new InvalidValueError(`${path} nests deeper than ${limit} levels; flatten it or store it as a string`, { path, limit })
  }
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value)) {
        const path = pathOf(base, at)
        throw loneSurrogate(path, path)
      }
      return
    case 'boolean':
    case 'bigint':
      return
    case 'number':
      if (Number.isNaN(value)) {
        const path = pathOf(base, at)
        throw new InvalidValueError(`${path} is NaN, which has no order or equality; store null instead`, { path })
      }
      return
    case 'object': {
      if (value === null || value instanceof Date || value instanceof Uint8Array) {
        if (value instanceof Date && Number.isNaN(value.getTime())) {
          const path = pathOf(base, at)
          throw new InvalidValueError(`${path} is an invalid Date; store null instead`, { path })
        }
        return
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          at.push(i)
          checkValue(value[i], base, depth + 1, limit, at)
          at.pop()
        }
        return
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        const path = pathOf(base, at)
        throw new InvalidValueError(`${path} is a ${proto?.constructor?.name ?? 'class instance'}; only plain objects, arrays, Date, Uint8Array and primitives can be stored`, { path })
      }
      for (const key of Object.keys(value)) {
        if (!isWellFormed(key)) {
          const path = pathOf(base, at)
          throw loneSurrogate(`${path} field name ${printable(key.slice(0, 64))}`, path)
        }
        at.push(key)
        checkValue((value as Record<string, unknown>)[key], base, depth + 1, limit, at)
        at.pop()
      }
      return
    }
    default: {
      const path = pathOf(base, at)
      throw new InvalidValueError(`${path} is ${typeof value}; only null, booleans, numbers, bigints, strings, Date, Uint8Array, arrays and plain objects can be stored (omit a field instead of setting it to undefined)`, { path })
    }
  }
}

/**
 * An upper bound of the size `value` takes when encoded as msgpack (bytes, and array
 * items plus map entries), computed without allocating; the walk stops once either bound
 * exceeds its cap. Cheap enough for every write: an exact measure is needed only when this
 * bound is over a limit.
 */
export function encodedSizeBound(value: unknown, capBytes: number, capElements: number): { bytes: number; elements: number } {
  let bytes = 0
  let elements = 0
  const stack: unknown[] = [value]
  while (stack.length > 0 && bytes <= capBytes && elements <= capElements) {
    const v = stack.pop()
    if (v === null || v === undefined || typeof v === 'boolean') bytes += 1
    else if (typeof v === 'number') bytes += 9
    else if (typeof v === 'bigint') bytes += 12
    else if (typeof v === 'string') bytes += 3 * v.length + 5
    else if (v instanceof Date) bytes += 15
    else if (v instanceof Uint8Array) bytes += v.length + 5
    else if (Array.isArray(v)) {
      bytes += 5
      elements += v.length
      for (const item of v) stack.push(item)
    } else if (typeof v === 'object') {
      bytes += 5
      for (const key of Object.keys(v)) {
        elements++
        bytes += 3 * key.length + 5
        stack.push((v as Record<string, unknown>)[key])
      }
    } else bytes += 9
  }
  return { bytes, elements }
}

/** The rank of each kind of value in the total order used by `orderBy` and range predicates (numbers and bigints share one). */
export function valueRank(value: Value): number {
  if (value === null) return 0
  switch (typeof value) {
    case 'boolean':
      return 1
    case 'number':
    case 'bigint':
      return 2
    case 'string':
      return 3
    default:
      if (value instanceof Date) return 4
      if (value instanceof Uint8Array) return 5
      if (Array.isArray(value)) return 6
      return 7
  }
}

function compareNumeric(a: number | bigint, b: number | bigint): number {
  if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0
  // Mixed number/bigint: JS compares them exactly.
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * A total order over values: null < booleans < numbers and bigints < strings < dates <
 * bytes < arrays < objects; within a kind, the natural order (strings by UTF-16 code
 * units, arrays and objects element by element). Deterministic on every replica.
 */
export function compareValues(a: Value, b: Value): number {
  const ra = valueRank(a)
  const rb = valueRank(b)
  if (ra !== rb) return ra - rb
  switch (ra) {
    case 0:
      return 0
    case 1:
      return a === b ? 0 : a ? 1 : -1
    case 2:
      return compareNumeric(a as number | bigint, b as number | bigint)
    case 3:
      return (a as string) < (b as string) ? -1 : (a as string) > (b as string) ? 1 : 0
    case 4:
      return Math.sign((a as Date).getTime() - (b as Date).getTime())
    case 5: {
      const x = a as Uint8Array
      const y = b as Uint8Array
      const n = Math.min(x.length, y.length)
      for (let i = 0; i < n; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number)
      return x.length - y.length
    }
    case 6: {
      const x = a as readonly Value[]
      const y = b as readonly Value[]
      const n = Math.min(x.length, y.length)
      for (let i = 0; i < n; i++) {
        const c = compareValues(x[i] as Value, y[i] as Value)
        if (c !== 0) return c
      }
      return x.length - y.length
    }
    default: {
      const x = a as Record<string, Value>
      const y = b as Record<string, Value>
      const kx = Object.keys(x).sort()
      const ky = Object.keys(y).sort()
      const n = Math.min(kx.length, ky.length)
      for (let i = 0; i < n; i++) {
        const ka = kx[i] as string
        const kb = ky[i] as string
        if (ka !== kb) return ka < kb ? -1 : 1
        const c = compareValues(x[ka] as Value, y[kb] as Value)
        if (c !== 0) return c
      }
      return kx.length - ky.length
    }
  }
}

/** Deep equality under {@link compareValues} (so `1` equals `1n`, and key order does not matter). */
export function valuesEqual(a: Value, b: Value): boolean {
  return compareValues(a, b) === 0
}

/** Reads an own field of a record without ever touching its prototype (`__proto__` is a plain field). */
export function getField(record: RecordValue, field: string): Value | undefined {
  return Object.hasOwn(record, field) ? record[field] : undefined
}

/**
 * Sets `record[name] = value` as an own data property, `__proto__` and friends included.
 * Plain assignment is several times faster (it keeps the object in V8's fast mode; a live
 * query's first run builds one record per stored record), but for names Object.prototype
 * defines it would call a setter or, with a frozen prototype, throw: those are defined.
 */
export function setOwnField(record: Record<string, Value>, name: string, value: Value): void {
  if (name in Object.prototype) Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true })
  else record[name] = value
}

/** Builds a record from `[name, value]` pairs; `__proto__` and friends become own data properties. */
export function recordFromEntries(entries: Iterable<readonly [string, Value]>): RecordValue {
  const record: Record<string, Value> = {}
  for (const [name, value] of entries) setOwnField(record, name, value)
  return record
}
