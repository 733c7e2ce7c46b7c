/**
 * `compileQuery` and `QueryView.load`: a view made from a compiled query evaluates like one
 * made from the query, and `load` gives the same rows whether its input is already in
 * order (not sorted again) or not, including when a later duplicate key breaks the order.
 */
import { describe, expect, it } from 'vitest'
import { QueryView, compileQuery, runQuery, type Query, type Row } from '../src/index'

const row = (key: string, n: number): Row => ({ key, value: { n } })

describe('QueryView with a compiled query', () => {
  const query: Query = { where: { gt: ['n', 0] }, orderBy: [['n', 'desc']], limit: 3 }

  it('evaluates like a view of the plain query, and shares the compiled parts', () => {
    const compiled = compileQuery(query)
    const input = [row('a', 1), row('b', 5), row('c', -1), row('d', 3), row('e', 4)]
    const plain = new QueryView(query)
    const shared = new QueryView(compiled)
    plain.load(input)
    shared.load(input)
    expect(shared.rows()).toEqual(plain.rows())
    expect(shared.rows()).toEqual(runQuery(input, query))
    expect(shared.query).toBe(query)
    expect(shared.apply('c', { n: 10 })).toBe(plain.apply('c', { n: 10 }))
    expect(shared.rows()).toEqual(plain.rows())
  })

  it('loads rows already in order, in reverse, and with a later duplicate key to the same result', () => {
    const ordered = [row('b', 5), row('e', 4), row('d', 3), row('a', 1)]
    const view = new QueryView(compileQuery({ orderBy: [['n', 'desc']] }))
    view.load(ordered)
    expect(view.rows()).toEqual(ordered)
    view.load([...ordered].reverse())
    expect(view.rows()).toEqual(ordered)
    // `a` comes again with a value that sorts first: it keeps its first place in the input, out of order.
    view.load([...ordered, row('a', 9)])
    expect(view.rows().map((r) => r.key)).toEqual(['a', 'b', 'e', 'd'])
    expect(view.apply('e', { n: 0 })).toBe(true)
    expect(view.rows().map((r) => r.key)).toEqual(['a', 'b', 'd', 'e'])
  })
})
