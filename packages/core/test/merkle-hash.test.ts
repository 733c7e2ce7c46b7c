/**
 * hash64 and CRDT-state digests: stable across builds (digests cross the wire), well
 * mixed, order-independent within a state, and projection-aware for LWW records.
 */
import { describe, expect, it } from 'vitest'
import { changeDigest, counterDigest, hash64, hash64Parts, isDigest, lwwDigest, orDigest } from '../src/merkle'
import type { Change, CounterState, LwwRecordState, OrSetState, ReplicaId, Stamp } from '../src/types'

const s = (x: string) => x as Stamp
const r = (x: string) => x as ReplicaId

describe('hash64', () => {
  it('is 16 lowercase hex characters and matches its parts', () => {
    for (const input of ['', 'a', 'ab', 'abc', '\u0000', '🙂', 'x'.repeat(1000)]) {
      const d = hash64(input)
      expect(isDigest(d)).toBe(true)
      const [hi, lo] = hash64Parts(input)
      expect(d).toBe(hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0'))
    }
  })

  it('is pinned: replicas on different builds must agree on digests', () => {
    expect(hash64('')).toBe(PINNED[''])
    expect(hash64('hello')).toBe(PINNED['hello'])
    expect(hash64('todos/t1')).toBe(PINNED['todos/t1'])
  })

  it('has no collisions among 200,000 similar strings (and tells trailing NULs apart)', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200_000; i++) seen.add(hash64(`key-${i}`))
    expect(seen.size).toBe(200_000)
    expect(new Set([hash64('x'), hash64('x\u0000'), hash64('x\u0000\u0000'), hash64('\u0000x')]).size).toBe(4)
  })

  it('avalanches: flipping one input bit flips about half of the 64 output bits', () => {
    let total = 0
    let samples = 0
    let worst = 64
    for (let i = 0; i < 2000; i++) {
      const base = `record-${i}-payload`
      const [h1, l1] = hash64Parts(base)
      for (const bit of [0, 1, 5, 7]) {
        const pos = i % base.length
        const flipped = base.slice(0, pos) + String.fromCharCode(base.charCodeAt(pos) ^ (1 << bit)) + base.slice(pos + 1)
        const [h2, l2] = hash64Parts(flipped)
        const diff = popcount(h1 ^ h2) + popcount(l1 ^ l2)
        total += diff
        samples++
        worst = Math.min(worst, diff)
      }
    }
    const mean = total / samples
    expect(mean).toBeGreaterThan(30)
    expect(mean).toBeLessThan(34)
    expect(worst).toBeGreaterThan(12)
  })
})

function popcount(x: number): number {
  let n = 0
  let v = x >>> 0
  while (v !== 0) {
    v &= v - 1
    n++
  }
  return n
}

const PINNED: Record<string, string> = {
  '': '593d7b04224c1548',
  hello: 'c42fc3f4ef657b89',
  'todos/t1': '455c222e2f6f8ac3',
}

describe('state digests', () => {
  const state: LwwRecordState = {
    fields: [
      ['title', 'Buy milk', s('0001-a')],
      ['done', false, s('0002-a')],
      ['__proto__', 1, s('0003-b')],
    ],
    deleted: null,
  }

  it('LWW: independent of field order, sensitive to stamps and tombstones, not to values', () => {
    const reordered: LwwRecordState = { fields: [...state.fields].reverse(), deleted: null }
    expect(lwwDigest(reordered)).toBe(lwwDigest(state))
    const restamped: LwwRecordState = { fields: [state.fields[0]!, ['done', false, s('0009-a')], state.fields[2]!], deleted: null }
    expect(lwwDigest(restamped)).not.toBe(lwwDigest(state))
    expect(lwwDigest({ ...state, deleted: s('0000-z') })).not.toBe(lwwDigest(state))
    // A field name cannot be confused with a stamp boundary.
    expect(lwwDigest({ fields: [['ab', 1, s('c')]], deleted: null })).not.toBe(lwwDigest({ fields: [['a', 1, s('bc')]], deleted: null }))
  })

  it('LWW with fields: only projected fields count, the tombstone always counts', () => {
    const projection = ['title']
    const otherFieldChanged: LwwRecordState = { fields: [state.fields[0]!, ['done', true, s('0099-c')]], deleted: null }
    expect(lwwDigest(otherFieldChanged, projection)).toBe(lwwDigest(state, projection))
    expect(lwwDigest(otherFieldChanged)).not.toBe(lwwDigest(state))
    const titleChanged: LwwRecordState = { fields: [['title', 'Buy oat milk', s('0100-c')], state.fields[1]!], deleted: null }
    expect(lwwDigest(titleChanged, projection)).not.toBe(lwwDigest(state, projection))
    expect(lwwDigest({ ...state, deleted: s('0050-d') }, projection)).not.toBe(lwwDigest(state, projection))
    expect(lwwDigest(state, [])).toBe(lwwDigest({ fields: [], deleted: null }))
  })

  it('OR sets and counters: order-independent, sensitive to every tag and total', () => {
    const or: OrSetState = { adds: [[s('t1'), 'a'], [s('t2'), 'b']], removes: [s('t0')] }
    expect(orDigest({ adds: [...or.adds].reverse(), removes: or.removes })).toBe(orDigest(or))
    expect(orDigest({ ...or, removes: [] })).not.toBe(orDigest(or))
    expect(orDigest({ adds: [], removes: [s('t1')] })).not.toBe(orDigest({ adds: [[s('t1'), 'a']], removes: [] }))

    const counter: CounterState = [
      [r('a'), 3, 1],
      [r('b'), 2, 0],
    ]
    expect(counterDigest([...counter].reverse())).toBe(counterDigest(counter))
    expect(counterDigest([[r('a'), 3, 2], counter[1]!])).not.toBe(counterDigest(counter))
  })

  it('changeDigest dispatches by kind and projects LWW changes', () => {
    const change: Change = { kind: 'lww', map: 'todos', key: 't1', state }
    expect(changeDigest(change)).toBe(lwwDigest(state))
    expect(changeDigest(change, ['title'])).toBe(lwwDigest(state, ['title']))
    const orChange: Change = { kind: 'or', map: 'tags', key: 'k', state: { adds: [], removes: [] } }
    expect(changeDigest(orChange)).toBe(orDigest({ adds: [], removes: [] }))
    // Different kinds with empty states never share a digest.
    expect(new Set([lwwDigest({ fields: [], deleted: null }), orDigest({ adds: [], removes: [] }), counterDigest([])]).size).toBe(3)
  })
})
