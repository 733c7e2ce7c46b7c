/**
 * QueryView laws (fast-check, seeded; replay with OUTPOST_SEED=<seed>, scale with
 * OUTPOST_PROPERTY_RUNS):
 * 1. After any sequence of inserts, updates and deletes, `rows()` equals `runQuery` over
 *    the same records (where, orderBy, limit).
 * 2. `apply` returns true exactly when the visible rows changed.
 * 3. An `apply` costs O(log n) comparisons, not a rescan of the map.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { QueryView, runQuery, validateQuery, type Predicate, type Query, type Row } from '../src/query'
import type { RecordValue, Value } from '../src/types'

const seed = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : Date.now() % 2 ** 31
const numRuns = Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 10_000)

function check<T>(property: fc.IProperty<T>, runs = numRuns): void {
  try {
    fc.assert(property, { seed, numRuns: runs })
  } catch (error) {
    console.error(`query-view property failed with seed ${seed}; replay with OUTPOST_SEED=${seed}`)
    throw error
  }
}

const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', '', '__proto__')
const fieldValueArb: fc.Arbitrary<Value | undefined> = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer({ min: 0, max: 4 }), fc.constantFrom('x', 'y'))
const recordArb: fc.Arbitrary<RecordValue> = fc.record({ n: fieldValueArb, s: fieldValueArb, t: fc.boolean() }).map((r) => {
  const out: Record<string, Value> = {}
  for (const [k, v] of Object.entries(r)) if (v !== undefined) out[k] = v
  return out
})
const whereArb: fc.Arbitrary<Predicate | undefined> = fc.constantFrom<Predicate | undefined>(
  undefined,
  { eq: ['t', true] },
  { gte: ['n', 2] },
  { or: [{ exists: 's' }, { lt: ['n', 1] }] },
  { not: { eq: ['s', 'x'] } },
)
const queryArb: fc.Arbitrary<Query> = fc
  .record({
    where: whereArb,
    orderBy: fc.constantFrom(undefined, [['n', 'asc']] as const, [['s', 'desc'], ['n', 'asc']] as const, [['t', 'desc']] as const),
    limit: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
  })
  .map((q) => validateQuery(Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined))))
const writeArb = fc.tuple(keyArb, fc.option(recordArb, { nil: undefined }))

function sameRows(a: readonly Row[], b: readonly Row[]): boolean {
  return a.length === b.length && a.every((row, i) => row.key === b[i]?.key && row.value === b[i]?.value)
}

describe('QueryView', () => {
  it('equals runQuery after any sequence of writes, and reports exactly the visible changes', () => {
    check(
      fc.property(queryArb, fc.array(writeArb, { maxLength: 8 }), fc.array(writeArb, { maxLength: 25 }), (query, initial, writes) => {
        const model = new Map<string, RecordValue>()
        for (const [k, v] of initial) if (v !== undefined) model.set(k, v)
        const view = new QueryView(query)
        view.load([...model].map(([key, value]) => ({ key, value })))
        expect(view.rows()).toEqual(runQuery([...model].map(([key, value]) => ({ key, value })), query))
        for (const [key, value] of writes) {
          const before = runQuery([...model].map(([k, v]) => ({ key: k, value: v })), query)
          if (value === undefined) model.delete(key)
          else model.set(key, value)
          const after = runQuery([...model].map(([k, v]) => ({ key: k, value: v })), query)
          const changed = view.apply(key, value)
          expect(view.rows()).toEqual(after)
          // Identity of row values: an equal-valued rewrite may report no change, a different one must.
          const visiblyDifferent = !sameRows(before, after)
          if (changed !== visiblyDifferent) {
            // Only allowed difference: a rewrite with a deep-equal value (no visible change, reported as none).
            expect(changed).toBe(false)
            expect(before).toEqual(after)
          }
        }
      }),
      Math.max(1, Math.min(numRuns, 3000)),
    )
  })

  it('returns the same rows array until the result changes', () => {
    const view = new QueryView({ orderBy: [['n', 'asc']], limit: 2 })
    view.load([
      { key: 'a', value: { n: 1 } },
      { key: 'b', value: { n: 2 } },
    ])
    const first = view.rows()
    expect(view.apply('z', { n: 9 })).toBe(false) // outside the window
    expect(view.rows()).toBe(first)
    expect(view.apply('b', { n: 0 })).toBe(true)
    expect(view.rows().map((r) => r.key)).toEqual(['b', 'a'])
    expect(view.apply('b', undefined)).toBe(true)
    expect(view.rows().map((r) => r.key)).toEqual(['a', 'z']) // the next row moves into the window
    expect(view.matchCount).toBe(2)
    expect(view.isVisible('z')).toBe(true)
  })

  it('get returns the current row of a matching key, inside or past the window', () => {
    const view = new QueryView({ where: { gt: ['n', 0] }, orderBy: [['n', 'asc']], limit: 1 })
    view.load([
      { key: 'a', value: { n: 1 } },
      { key: 'b', value: { n: 2 } },
      { key: 'c', value: { n: 0 } },
    ])
    expect(view.get('a')).toEqual({ key: 'a', value: { n: 1 } })
    expect(view.get('b')).toEqual({ key: 'b', value: { n: 2 } }) // past the limit, still held
    expect(view.get('c')).toBeUndefined() // does not match
    view.apply('b', { n: 5 })
    expect(view.get('b')?.value).toEqual({ n: 5 })
    view.apply('b', undefined)
    expect(view.get('b')).toBeUndefined()
  })

  it('stays equal to runQuery on thousands of rows with skewed writes (chunk splits and emptied chunks)', () => {
    let state = (seed ^ 0x5bd1e995) >>> 0
    const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0)
    for (const limit of [1, 300, 1500, undefined]) {
      const query: Query = limit === undefined ? { orderBy: [['rank', 'desc']] } : { orderBy: [['rank', 'desc']], limit }
      const model = new Map<string, RecordValue>()
      for (let i = 0; i < 2000; i++) model.set(`k${i}`, { rank: next() % 10_000 })
      const view = new QueryView(query)
      view.load([...model].map(([key, value]) => ({ key, value })))
      for (let i = 0; i < 4000; i++) {
        const key = `k${next() % 2500}`
        // Mostly high ranks: the first chunks grow and split, the tail ones are deleted away.
        const roll = next() % 10
        const value = roll < 3 ? undefined : { rank: roll < 9 ? 9_000 + (next() % 1000) : next() % 10_000 }
        if (value === undefined) model.delete(key)
        else model.set(key, value)
        const before = view.rows()
        const changed = view.apply(key, value)
        const after = view.rows()
        if (changed !== !sameRows(before, after)) {
          throw new Error(`apply(${key}) reported changed=${changed} at write ${i}, limit ${limit} (seed ${seed})`)
        }
        if (i % 250 === 0 || i === 3999) {
          expect(after, `write ${i}, limit ${limit}, seed ${seed}`).toEqual(runQuery([...model].map(([k, v]) => ({ key: k, value: v })), query))
        }
      }
      expect(view.matchCount).toBe(model.size)
    }
  })

  it('applies a write to a 100,000-row view with O(log n) comparisons', () => {
    let reads = 0
    const counted = (rank: number): RecordValue =>
      Object.defineProperty({}, 'rank', {
        enumerable: true,
        get() {
          reads++
          return rank
        },
      }) as RecordValue
    const n = 100_000
    const query: Query = { orderBy: [['rank', 'asc']], limit: 50 }
    let state = seed >>> 0
    const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0)

    const view = new QueryView(query)
    const model = new Map<string, RecordValue>()
    for (let i = 0; i < n; i++) model.set(`k${i}`, counted((i * 7919) % n))
    view.load([...model].map(([key, value]) => ({ key, value })))
    const writes = 2000
    reads = 0
    for (let i = 0; i < writes; i++) {
      const key = `k${next() % n}`
      const value = next() % 10 === 0 ? undefined : counted(next() % n)
      if (value === undefined) model.delete(key)
      else model.set(key, value)
      view.apply(key, value)
    }
    const readsPerApply = reads / writes
    // Two binary searches over 100,000 rows read the sort field about 4·17 times; a rescan would read it 100,000 times.
    expect(readsPerApply).toBeLessThan(100)
    expect(view.rows()).toEqual(runQuery([...model].map(([key, value]) => ({ key, value })), query))

    // The same with plain records, timed (printed, never asserted).
    const plain = new QueryView(query)
    plain.load(Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: { rank: (i * 7919) % n } })))
    const started = performance.now()
    for (let i = 0; i < writes; i++) plain.apply(`k${next() % n}`, { rank: next() % n })
    const micros = ((performance.now() - started) / writes) * 1000
    console.info(`QueryView n=${n}: ${readsPerApply.toFixed(1)} sort-field reads and ${micros.toFixed(1)} µs per apply (seed ${seed})`)
  })
})
