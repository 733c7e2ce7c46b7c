/**
 * Predicates: the validator names the offending node, the semantics table holds on the
 * exact values users write, claims bind and fail closed, and `__proto__`/`constructor`
 * are plain fields.
 */
import { describe, expect, it } from 'vitest'
import { PredicateError } from '../src/errors'
import { andPredicates, bindClaims, compilePredicate, matches, validatePredicate, type Predicate } from '../src/query'
import type { RecordValue } from '../src/types'
import { recordFromEntries } from '../src/value'

function errorOf(input: unknown, path?: string): PredicateError {
  try {
    validatePredicate(input, path)
  } catch (error) {
    if (error instanceof PredicateError) return error
    throw error
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`)
}

function nest(depth: number): unknown {
  let p: unknown = { eq: ['a', 1] }
  for (let i = 0; i < depth; i++) p = { not: p }
  return p
}

describe('validatePredicate', () => {
  const bad: [name: string, input: unknown, path: string, says: RegExp][] = [
    ['null', null, '', /exactly one operator/],
    ['an array', [{ eq: ['a', 1] }], '', /got an array/],
    ['no operator', {}, '', /got none/],
    ['two operators', { eq: ['a', 1], ne: ['b', 2] }, '', /"eq", "ne"/],
    ['unknown operator', { equals: ['a', 1] }, '', /unknown operator "equals"/],
    ['and of a non-array', { and: { eq: ['a', 1] } }, 'and', /array of predicates/],
    ['bad child of and', { and: [{ eq: ['a', 1] }, { eq: [1, 2] }] }, 'and[1].eq[0]', /field name/],
    ['eq with one operand', { eq: ['a'] }, 'eq', /\[field, value\]/],
    ['eq with undefined value', { eq: ['a', undefined] }, 'eq[1]', /got undefined/],
    ['eq with a function value', { eq: ['a', () => 1] }, 'eq[1]', /function/],
    ['eq with NaN', { eq: ['a', Number.NaN] }, 'eq[1]', /NaN/],
    ['empty field path', { exists: [] }, 'exists', /field path of 1 to 16/],
    ['non-string path segment', { exists: ['a', 2] }, 'exists[1]', /field name/],
    ['in without a list', { in: ['a', 'b'] }, 'in[1]', /array of values/],
    ['bad value in an in list', { in: ['a', [1, Symbol('x')]] }, 'in[1][1]', /symbol/],
    ['startsWith a number', { startsWith: ['a', 1] }, 'startsWith[1]', /string prefix/],
    ['not of garbage', { or: [{ not: 'x' }] }, 'or[0].not', /the string "x"/],
    ['class instance', new (class Foo {})(), '', /got a Foo instance/],
    ['too deep', nest(40), 'not.not.not', /deeper than 32/],
    ['too many nodes', { or: Array.from({ length: 1200 }, () => ({ eq: ['a', 1] })) }, 'or[', /more than 1000 operators/],
  ]
  it.each(bad)('rejects %s with a path and a reason', (_name, input, path, says) => {
    const error = errorOf(input)
    expect(error.code).toBe('INVALID_PREDICATE')
    expect(String(error.details?.['path'])).toContain(path)
    expect(error.message).toMatch(says)
  })

  it('prefixes the caller’s path', () => {
    expect(errorOf({ and: [{ gt: [['a', 3], 1, 2] }] }, 'where').details?.['path']).toBe('where.and[0].gt')
  })

  it('returns a fresh copy that later mutation of the input cannot change', () => {
    const input = { and: [{ eq: ['status', 'open'] }] }
    const p = validatePredicate(input)
    input.and.push({ eq: ['status', 'closed'] })
    expect(p).toEqual({ and: [{ eq: ['status', 'open'] }] })
  })

  it('accepts every operator the design lists', () => {
    const all = {
      and: [
        { or: [{ eq: ['a', 1] }, { ne: ['a', 2] }] },
        { not: { lt: ['a', 1] } },
        { lte: ['a', 1] },
        { gt: [['n', 'x'], 1n] },
        { gte: ['d', new Date(0)] },
        { in: ['s', ['x', null]] },
        { startsWith: ['s', 'x'] },
        { contains: ['tags', 'x'] },
        { exists: '' },
      ],
    }
    expect(validatePredicate(all)).toEqual(all)
  })
})

describe('predicate semantics', () => {
  const record: RecordValue = {
    title: 'Buy milk',
    done: false,
    priority: 2,
    big: 10n,
    due: new Date('2026-01-02T00:00:00Z'),
    tags: ['home', 'urgent', 3],
    owner: null,
    address: { city: 'Lyon', geo: { lat: 45 } },
  }
  const table: [Predicate, boolean][] = [
    [{ eq: ['title', 'Buy milk'] }, true],
    [{ eq: ['priority', 2n] }, true],
    [{ eq: ['missing', null] }, false],
    [{ eq: ['owner', null] }, true],
    [{ ne: ['missing', 1] }, true],
    [{ ne: ['priority', 2] }, false],
    [{ lt: ['priority', 3] }, true],
    [{ lt: ['missing', 3] }, false],
    [{ lt: ['owner', 3] }, false], // null is not a number: no cross-kind ranges
    [{ lt: ['title', 3] }, false],
    [{ gte: ['big', 10] }, true],
    [{ gt: ['due', new Date('2026-01-01T00:00:00Z')] }, true],
    [{ lte: ['title', 'Buy'] }, false],
    [{ in: ['priority', [1, 2, 3]] }, true],
    [{ in: ['title', ['a', 'Buy milk']] }, true],
    [{ in: ['missing', [null]] }, false],
    [{ in: ['tags', [['home', 'urgent', 3]]] }, true],
    [{ startsWith: ['title', 'Buy'] }, true],
    [{ startsWith: ['priority', '2'] }, false],
    [{ contains: ['title', 'milk'] }, true],
    [{ contains: ['tags', 'urgent'] }, true],
    [{ contains: ['tags', 3n] }, true],
    [{ contains: ['tags', 'urg'] }, false],
    [{ contains: ['title', 1] }, false],
    [{ exists: 'owner' }, true],
    [{ exists: 'missing' }, false],
    [{ eq: [['address', 'city'], 'Lyon'] }, true],
    [{ eq: [['address', 'geo', 'lat'], 45] }, true],
    [{ exists: ['address', 'zip'] }, false],
    [{ exists: ['title', 'length'] }, false], // strings have no fields
    [{ exists: ['tags', '0'] }, false], // arrays are not walked by path
    [{ eq: ['address.city', 'Lyon'] }, false], // a dotted string is one top-level name
    [{ and: [] }, true],
    [{ or: [] }, false],
    [{ and: [{ eq: ['done', false] }, { gt: ['priority', 1] }] }, true],
    [{ or: [{ eq: ['done', true] }, { gt: ['priority', 5] }] }, false],
    [{ not: { exists: 'missing' } }, true],
  ]
  const label = (p: Predicate) => JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))
  it.each(table.map(([p, e]) => [label(p), p, e] as const))('%s → %s', (_label, predicate, expected) => {
    expect(matches(validatePredicate(predicate), record)).toBe(expected)
  })

  it('treats __proto__, constructor and toString as plain fields', () => {
    const r = recordFromEntries([
      ['__proto__', 'p'],
      ['constructor', 5],
    ])
    expect(matches({ eq: ['__proto__', 'p'] }, r)).toBe(true)
    expect(matches({ eq: ['constructor', 5] }, r)).toBe(true)
    expect(matches({ exists: 'toString' }, r)).toBe(false)
    expect(matches({ exists: 'constructor' }, {})).toBe(false)
    expect(matches({ exists: '__proto__' }, {})).toBe(false)
    expect(matches({ exists: ['a', '__proto__'] }, { a: {} })).toBe(false)
    const parsed = validatePredicate(JSON.parse('{"eq":["__proto__","p"]}'))
    expect(matches(parsed, r)).toBe(true)
  })

  it('compiles once and evaluates many records', () => {
    const test = compilePredicate(validatePredicate({ and: [{ in: ['s', ['a', 'b']] }, { gte: ['n', 10] }] }))
    const rows = Array.from({ length: 100 }, (_, i) => ({ s: i % 3 === 0 ? 'a' : 'c', n: i }))
    expect(rows.filter(test).map((r) => r.n)).toEqual(rows.filter((r) => r.s === 'a' && r.n >= 10).map((r) => r.n))
    expect(compilePredicate(undefined)({})).toBe(true)
  })
})

describe('bindClaims', () => {
  const rows: RecordValue[] = [
    { id: 1, owner: 'u1', team: 't1', public: false },
    { id: 2, owner: 'u2', team: 't1', public: true },
    { id: 3, owner: 'u2', team: 't2', public: false },
  ]
  const visible = (p: Predicate) => rows.filter(compilePredicate(p)).map((r) => r['id'])

  it('substitutes "$name" with the claim, from a Map or a plain object', () => {
    const rule: Predicate = { eq: ['owner', '$sub'] }
    expect(visible(bindClaims(rule, { sub: 'u2' }))).toEqual([2, 3])
    expect(visible(bindClaims(rule, new Map([['sub', 'u1']])))).toEqual([1])
    expect(bindClaims({ in: ['team', ['$team', 't9']] }, { team: 't2' })).toEqual({ in: ['team', ['t2', 't9']] })
    expect(bindClaims({ startsWith: ['owner', '$prefix'] }, { prefix: 'u' })).toEqual({ startsWith: ['owner', 'u'] })
  })

  it('reads "$$x" as the literal "$x"', () => {
    expect(bindClaims({ eq: ['owner', '$$sub'] }, { sub: 'u1' })).toEqual({ eq: ['owner', '$sub'] })
  })

  it('fails closed on a missing claim, also under not', () => {
    expect(visible(bindClaims({ eq: ['owner', '$sub'] }, {}))).toEqual([])
    expect(visible(bindClaims({ or: [{ eq: ['owner', '$sub'] }, { eq: ['public', true] }] }, {}))).toEqual([2])
    expect(visible(bindClaims({ not: { eq: ['owner', '$sub'] } }, {}))).toEqual([])
    expect(visible(bindClaims({ ne: ['owner', '$sub'] }, {}))).toEqual([])
    expect(visible(bindClaims({ not: { not: { eq: ['owner', '$sub'] } } }, {}))).toEqual([])
    // A claim named like a prototype member is not found on a plain object.
    expect(visible(bindClaims({ eq: ['owner', '$constructor'] }, {}))).toEqual([])
  })

  it('leaves predicates without claims unchanged', () => {
    const p: Predicate = { and: [{ exists: 'owner' }, { gt: ['id', 1] }] }
    expect(bindClaims(p, { sub: 'x' })).toEqual(p)
  })
})

describe('andPredicates', () => {
  it('skips undefined and conjoins the rest', () => {
    expect(andPredicates()).toBeUndefined()
    expect(andPredicates(undefined, undefined)).toBeUndefined()
    expect(andPredicates({ exists: 'a' }, undefined)).toEqual({ exists: 'a' })
    const both = andPredicates({ exists: 'a' }, undefined, { eq: ['b', 1] })
    expect(both).toEqual({ and: [{ exists: 'a' }, { eq: ['b', 1] }] })
    expect(matches(both, { a: 0, b: 1 })).toBe(true)
    expect(matches(both, { b: 1 })).toBe(false)
  })
})
