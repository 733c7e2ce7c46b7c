/**
 * Queries and shapes: validation with paths, ordering (total and replica-independent),
 * one-shot evaluation, projection and canonical shape keys.
 */
import { describe, expect, it } from 'vitest'
import { OutpostError } from '../src/errors'
import { compareRows, projectRecord, runQuery, shapeKey, validateQuery, validateShape, type Row } from '../src/query'
import { recordFromEntries } from '../src/value'

function errorOf(f: () => unknown): OutpostError {
  try {
    f()
  } catch (error) {
    if (error instanceof OutpostError) return error
    throw error
  }
  throw new Error('expected a rejection')
}

describe('validateQuery / validateShape', () => {
  const badQueries: [name: string, input: unknown, code: string, path: string, says: RegExp][] = [
    ['not an object', 'all', 'INVALID_QUERY', '(root)', /expected an object/],
    ['unknown option', { order: [] }, 'INVALID_QUERY', 'order', /unknown query option "order"/],
    ['zero limit', { limit: 0 }, 'INVALID_QUERY', 'limit', /positive integer/],
    ['fractional limit', { limit: 1.5 }, 'INVALID_QUERY', 'limit', /positive integer/],
    ['huge limit', { limit: 1_000_001 }, 'INVALID_QUERY', 'limit', /at most 1000000/],
    ['string limit', { limit: '10' }, 'INVALID_QUERY', 'limit', /got string/],
    ['bad direction', { orderBy: [['a', 'up']] }, 'INVALID_QUERY', 'orderBy[0][1]', /"asc" or "desc"/],
    ['bad field', { orderBy: [[3, 'asc']] }, 'INVALID_QUERY', 'orderBy[0][0]', /field name/],
    ['too many keys', { orderBy: Array.from({ length: 9 }, (_, i) => [`f${i}`, 'asc']) }, 'INVALID_QUERY', 'orderBy', /at most 8/],
    ['bad where', { where: { and: [{ eq: ['a'] }] } }, 'INVALID_PREDICATE', 'where.and[0].eq', /\[field, value\]/],
  ]
  it.each(badQueries)('rejects a query with %s', (_name, input, code, path, says) => {
    const error = errorOf(() => validateQuery(input))
    expect(error.code).toBe(code)
    expect(error.details?.['path']).toBe(path)
    expect(error.message).toMatch(says)
  })

  const badShapes: [name: string, input: unknown, path: string, says: RegExp][] = [
    ['no map', { where: { exists: 'a' } }, 'map', /map name/],
    ['empty map', { map: '' }, 'map', /map name/],
    ['duplicate field', { map: 'todos', fields: ['a', 'b', 'a'] }, 'fields[2]', /listed twice/],
    ['non-string field', { map: 'todos', fields: ['a', 1] }, 'fields[1]', /field name/],
    ['unknown option', { map: 'todos', select: ['a'] }, 'select', /unknown shape option/],
  ]
  it.each(badShapes)('rejects a shape with %s', (_name, input, path, says) => {
    const error = errorOf(() => validateShape(input))
    expect(error.code).toBe('INVALID_QUERY')
    expect(error.details?.['path']).toBe(path)
    expect(error.message).toMatch(says)
  })

  it('accepts and copies a full shape', () => {
    const input = { map: 'todos', where: { eq: ['done', false] }, fields: ['title', 'done'], orderBy: [[['meta', 'rank'], 'desc']], limit: 50 }
    const shape = validateShape(input)
    expect(shape).toEqual(input)
    input.fields.push('x')
    expect(shape.fields).toEqual(['title', 'done'])
    expect(validateQuery({})).toEqual({})
  })
})

const rows: Row[] = [
  { key: 'c', value: { n: 2, s: 'x' } },
  { key: 'a', value: { n: 2, s: 'y' } },
  { key: 'b', value: { n: 1 } },
  { key: 'd', value: { s: 'z' } },
  { key: 'e', value: { n: null } },
]

describe('compareRows / runQuery', () => {
  it('orders by keys in turn, missing first, ties by record key', () => {
    expect(runQuery(rows, { orderBy: [['n', 'asc']] }).map((r) => r.key)).toEqual(['d', 'e', 'b', 'a', 'c'])
    expect(runQuery(rows, { orderBy: [['n', 'desc']] }).map((r) => r.key)).toEqual(['a', 'c', 'b', 'e', 'd'])
    expect(runQuery(rows, { orderBy: [['n', 'desc'], ['s', 'desc']] }).map((r) => r.key)).toEqual(['a', 'c', 'b', 'e', 'd'])
    expect(runQuery(rows, {}).map((r) => r.key)).toEqual(['a', 'b', 'c', 'd', 'e'])
  })

  it('filters, then orders, then limits', () => {
    const q = validateQuery({ where: { exists: 'n' }, orderBy: [['n', 'asc']], limit: 2 })
    expect(runQuery(rows, q).map((r) => r.key)).toEqual(['e', 'b'])
  })

  it('is the same order whatever the input order (replica-independent)', () => {
    const cmp = compareRows([['s', 'asc']])
    const forward = [...rows].sort(cmp).map((r) => r.key)
    const backward = [...rows].reverse().sort(cmp).map((r) => r.key)
    expect(forward).toEqual(backward)
  })
})

describe('projectRecord', () => {
  it('keeps only listed fields, including __proto__, and leaves missing ones out', () => {
    const record = recordFromEntries([
      ['__proto__', 1],
      ['title', 't'],
      ['secret', 's'],
    ])
    const projected = projectRecord(record, ['__proto__', 'title', 'missing'])
    expect(Object.keys(projected)).toEqual(['__proto__', 'title'])
    expect(Object.hasOwn(projected, '__proto__')).toBe(true)
    expect(Object.getPrototypeOf(projected)).toBe(Object.prototype)
    expect(projectRecord(record, undefined)).toBe(record)
  })
})

describe('shapeKey', () => {
  it('is equal for equal shapes written differently', () => {
    const a = validateShape({ limit: 10, fields: ['b', 'a'], map: 'todos', where: { and: [{ eq: [['x'], { q: 1, p: 2 }] }] } })
    const b = validateShape({ map: 'todos', where: { and: [{ eq: ['x', { p: 2, q: 1 }] }] }, fields: ['a', 'b'], limit: 10 })
    expect(shapeKey(a)).toBe(shapeKey(b))
  })

  it('differs when anything that changes the slice differs', () => {
    const base = { map: 'todos', where: { eq: ['n', 1] }, limit: 10 }
    const keys = new Set(
      [
        base,
        { ...base, map: 'notes' },
        { ...base, where: { eq: ['n', '1'] } },
        { ...base, where: { eq: ['n', 1n + 1n] } },
        { ...base, limit: 11 },
        { ...base, orderBy: [['n', 'asc']] },
        { ...base, orderBy: [['n', 'desc']] },
        { ...base, fields: ['n'] },
        { ...base, where: { eq: ['n', new Date(1)] } },
        { ...base, where: { eq: ['n', new Uint8Array([1])] } },
        { ...base, where: { eq: [['n', 'm'], 1] } },
      ].map((s) => shapeKey(validateShape(s))),
    )
    expect(keys.size).toBe(11)
  })
})
