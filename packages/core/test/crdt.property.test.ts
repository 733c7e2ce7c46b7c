/**
 * Property tests of the CRDTs. Seeded: OUTPOST_SEED replays a run (the seed is printed in
 * every failure), OUTPOST_PROPERTY_RUNS sets the runs per law (default 10 000).
 *
 * Laws, for each of LWW record, OR set and PN counter (≡ is the kind's state equality):
 *  - merge is commutative:  merge(a, b) ≡ merge(b, a)
 *  - merge is associative:  merge(merge(a, b), c) ≡ merge(a, merge(b, c))
 *  - merge is idempotent:   merge(a, a) ≡ a, and the empty state is its identity
 * LWW record:
 *  - a dead field keeps its value only while it weighs at most VALUE_LIMITS.deadValueWeight
 *    (heavier ones become null), and the laws above hold with that rule;
 *  - concurrent updates of different fields both survive the merge;
 *  - a field written after a delete revives the record with that field only;
 *  - `set` replaces the record: the view is exactly the given record;
 *  - the view of any merge of writes is the last-writer model: per field the write with the
 *    greatest stamp, minus fields not newer than the greatest tombstone.
 * OR set:
 *  - add wins: an add concurrent with a remove of the same value survives it;
 *  - a remove removes every add of the value it observed;
 *  - values are distinct and sorted.
 * PN counter:
 *  - its value equals the sum of the applied deltas, whatever the delivery order and
 *    however many duplicates;
 *  - NaN and ±Infinity deltas are rejected.
 * Field names and values include `__proto__`, `constructor`, `prototype` and `""`; the
 * arbitraries use few names, stamps and replicas so conflicts and ties are common.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeStamp, encodeStamp } from '../src/clock'
import {
  CrdtMap,
  changeIsEmpty,
  counterAddState,
  counterEquals,
  counterValue,
  emptyCounter,
  emptyLww,
  emptyOr,
  isAlive,
  lwwDeleteState,
  lwwEquals,
  lwwLatest,
  lwwMaxStamp,
  lwwSetState,
  lwwUpdateState,
  lwwView,
  mergeChange,
  mergeCounter,
  mergeLww,
  mergeOr,
  orAddState,
  orEquals,
  orHas,
  orRemoveState,
  orValues,
  projectLww,
} from '../src/crdt'
import { InternalError, InvalidValueError } from '../src/errors'
import type { CounterState, LwwRecordState, OrSetState, RecordValue, ReplicaId, Stamp, Value } from '../src/types'
import { VALUE_LIMITS, compareValues, getField, recordFromEntries, valueWeight, valuesEqual } from '../src/value'

const SEED = process.env['OUTPOST_SEED'] !== undefined ? Number(process.env['OUTPOST_SEED']) : Math.floor(Math.random() * 2 ** 31)
const RUNS = Math.max(1, Number(process.env['OUTPOST_PROPERTY_RUNS'] ?? 10_000))

/** Runs a property with the file's seed; a failure names the seed (and the shrunk case) to replay. */
function check<T>(property: fc.IProperty<T>, runs = RUNS): void {
  const result = fc.check(property, { seed: SEED, numRuns: runs })
  if (result.failed) {
    throw new Error(`property failed; replay with OUTPOST_SEED=${SEED}\n${fc.defaultReportMessage(result)}\n${String(result.errorInstance)}`)
  }
}

const REPLICAS = ['a', 'b', 'c'] as ReplicaId[]
const FIELDS = ['__proto__', 'constructor', 'prototype', '', 'x', 'y']

const replica = fc.constantFrom(...REPLICAS)
const stamp: fc.Arbitrary<Stamp> = fc
  .record({ wall: fc.integer({ min: 0, max: 6 }), counter: fc.integer({ min: 0, max: 2 }), replica })
  .map((parts) => encodeStamp(parts))
const fieldName = fc.constantFrom(...FIELDS)
const value: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom<Value>(null, true, false, 0, 1, -1.5, '', 'x', '__proto__'),
  fc.constant(new Date(0)),
  fc.constant(Uint8Array.of(1, 2)),
  fc.constant([1, 'x']),
  fc.constant(recordFromEntries([['__proto__', 1]])),
  // Heavier than VALUE_LIMITS.deadValueWeight: kept as null once dead.
  fc.constant('h'.repeat(300)),
  fc.constant(Array.from({ length: 40 }, (_, i) => i)),
)

/** What a dead field keeps of `v`: the value itself, or null when it is heavy. */
function deadValue(v: Value): Value {
  return valueWeight(v, VALUE_LIMITS.deadValueWeight) > VALUE_LIMITS.deadValueWeight ? null : v
}
const record: fc.Arbitrary<RecordValue> = fc
  .uniqueArray(fc.tuple(fieldName, value), { selector: (entry) => entry[0], maxLength: 4 })
  .map((entries) => recordFromEntries(entries))

/** One LWW write as a delta state. */
const lwwDelta: fc.Arbitrary<LwwRecordState> = fc.oneof(
  fc.tuple(record, stamp).map(([r, s]) => lwwUpdateState(r, s)),
  stamp.map((s) => lwwDeleteState(s)),
  fc.tuple(record, stamp, replica).map(([r, s, who]) => lwwSetState(r, s, bump(s, who, 0))),
)
/** A state reached by merging some writes (merged states are normalized). */
const lwwState = fc.array(lwwDelta, { maxLength: 5 }).map((ds) => ds.reduce(mergeLww, emptyLww()))

/** A stamp strictly after `floor` (k orders several of them). */
function bump(floor: Stamp | null, who: ReplicaId, k: number): Stamp {
  const wall = floor === null ? 0 : decodeStamp(floor).wall
  return encodeStamp({ wall: wall + 1 + k, counter: 0, replica: who })
}

const orDelta = (base: fc.Arbitrary<OrSetState>): fc.Arbitrary<OrSetState> =>
  fc.oneof(
    fc.tuple(value, stamp).map(([v, s]) => orAddState(v, s)),
    fc.tuple(base, value).map(([current, v]) => orRemoveState(current, v)),
  )
const orState: fc.Arbitrary<OrSetState> = fc
  .array(fc.oneof(fc.tuple(value, stamp).map(([v, s]) => ({ add: [v, s] as const })), value.map((v) => ({ remove: v }))), { maxLength: 6 })
  .map((ops) => {
    let state = emptyOr()
    for (const op of ops) state = mergeOr(state, 'add' in op ? orAddState(op.add[0], op.add[1]) : orRemoveState(state, op.remove))
    return state
  })

const counterState: fc.Arbitrary<CounterState> = fc
  .array(fc.tuple(replica, fc.integer({ min: -5, max: 5 })), { maxLength: 6 })
  .map((ops) => ops.reduce<CounterState>((state, [who, delta]) => mergeCounter(state, counterAddState(state, who, delta)), emptyCounter()))

/** The three semilattice laws (and the identity) for one kind. */
function semilatticeLaws<S>(name: string, state: fc.Arbitrary<S>, merge: (a: S, b: S) => S, equals: (a: S, b: S) => boolean, empty: S): void {
  describe(`${name}: merge is a join`, () => {
    it('commutes', () => check(fc.property(state, state, (a, b) => equals(merge(a, b), merge(b, a)))))
    it('associates', () => check(fc.property(state, state, state, (a, b, c) => equals(merge(merge(a, b), c), merge(a, merge(b, c))))))
    it('is idempotent with the empty state as identity', () =>
      check(fc.property(state, (a) => equals(merge(a, a), a) && equals(merge(a, empty), a) && equals(merge(empty, a), a))))
  })
}

semilatticeLaws('LWW record', lwwState, mergeLww, lwwEquals, emptyLww())
semilatticeLaws('OR set', orState, mergeOr, orEquals, emptyOr())
semilatticeLaws('PN counter', counterState, mergeCounter, counterEquals, emptyCounter())

/** Own-property view of a record as sorted entries, so `__proto__` compares as data. */
function entriesOf(r: RecordValue | undefined): [string, Value][] | undefined {
  if (r === undefined) return undefined
  return Object.keys(r)
    .sort()
    .map((k) => [k, getField(r, k) as Value])
}

describe('LWW record semantics', () => {
  it('keeps concurrent updates of different fields', () => {
    check(
      fc.property(lwwState, fieldName, fieldName, value, value, (base, f, g, vf, vg) => {
        fc.pre(f !== g)
        const floor = lwwMaxStamp(base)
        const left = lwwUpdateState(recordFromEntries([[f, vf]]), bump(floor, 'a' as ReplicaId, 0))
        const right = lwwUpdateState(recordFromEntries([[g, vg]]), bump(floor, 'b' as ReplicaId, 0))
        const view = lwwView(mergeLww(mergeLww(base, left), right))
        expect(view).toBeDefined()
        expect(valuesEqual(getField(view as RecordValue, f) as Value, vf)).toBe(true)
        expect(valuesEqual(getField(view as RecordValue, g) as Value, vg)).toBe(true)
      }),
    )
  })

  it('revives a deleted record with the newer field only', () => {
    check(
      fc.property(lwwState, fieldName, value, (base, f, v) => {
        const deletedAt = bump(lwwMaxStamp(base), 'a' as ReplicaId, 0)
        const deleted = mergeLww(base, lwwDeleteState(deletedAt))
        expect(lwwView(deleted)).toBeUndefined()
        expect(isAlive(deleted)).toBe(false)
        // Dead fields stay readable for tombstone authorization (heavy values as null).
        expect(entriesOf(lwwLatest(deleted))).toEqual(entriesOf(lwwLatest(base))?.map(([k, v]) => [k, deadValue(v)]))
        const revived = mergeLww(deleted, lwwUpdateState(recordFromEntries([[f, v]]), bump(deletedAt, 'b' as ReplicaId, 0)))
        expect(entriesOf(lwwView(revived))).toEqual([[f, v]])
      }),
    )
  })

  it('replaces the record on set, with special names as ordinary fields', () => {
    check(
      fc.property(lwwState, record, (base, r) => {
        const d = bump(lwwMaxStamp(base), 'c' as ReplicaId, 0)
        const after = mergeLww(base, lwwSetState(r, d, bump(d, 'c' as ReplicaId, 0)))
        const view = lwwView(after)
        expect(entriesOf(view)).toEqual(Object.keys(r).length === 0 ? undefined : entriesOf(r))
        if (view !== undefined) expect(Object.getPrototypeOf(view)).toBe(Object.prototype)
      }),
    )
  })

  it('shows the last-writer model for any delivery order of writes', () => {
    const write = fc.oneof(
      fc.tuple(fieldName, value, stamp).map(([f, v, s]) => ({ field: f, value: v, stamp: s })),
      stamp.map((s) => ({ deleted: s })),
    )
    check(
      fc.property(fc.array(write, { maxLength: 10 }), fc.array(fc.nat(), { minLength: 10, maxLength: 10 }), (raw, order) => {
        // One clock issues one stamp per write: keep the first write of each stamp.
        const seen = new Set<Stamp>()
        const writes = raw.filter((w) => {
          const s = 'deleted' in w ? w.deleted : w.stamp
          if (seen.has(s)) return false
          seen.add(s)
          return true
        })
        // The model, computed without merge: per field the write with the greatest stamp, alive if newer than the greatest tombstone.
        let tomb: Stamp | null = null
        const best = new Map<string, { value: Value; stamp: Stamp }>()
        for (const w of writes) {
          if ('deleted' in w) {
            if (tomb === null || w.deleted > tomb) tomb = w.deleted
          } else {
            const current = best.get(w.field)
            if (current === undefined || w.stamp > current.stamp) best.set(w.field, { value: w.value, stamp: w.stamp })
          }
        }
        const expected = [...best.entries()]
          .filter(([, reg]) => tomb === null || reg.stamp > tomb)
          .map(([f, reg]) => [f, reg.value] as [string, Value])
          .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
        const deltas = writes.map((w) => ('deleted' in w ? lwwDeleteState(w.deleted) : lwwUpdateState(recordFromEntries([[w.field, w.value]]), w.stamp)))
        const shuffled = deltas.map((d, i) => [order[i] ?? 0, d] as const).sort((x, y) => x[0] - y[0]).map(([, d]) => d)
        const view = lwwView(shuffled.reduce(mergeLww, emptyLww()))
        expect(entriesOf(view)).toEqual(expected.length === 0 ? undefined : expected)
      }),
    )
  })

  it('projects fields and keeps the tombstone', () => {
    check(
      fc.property(lwwState, fc.uniqueArray(fieldName, { maxLength: 3 }), (s, keep) => {
        const projected = projectLww(s, keep)
        expect(projected.deleted).toBe(s.deleted)
        expect(projected.fields.every((entry) => keep.includes(entry[0]))).toBe(true)
        // Projecting then merging the full state back loses nothing.
        expect(lwwEquals(mergeLww(projected, s), s)).toBe(true)
      }),
      1_000,
    )
  })

  it('rejects bad input with typed errors', () => {
    const s1 = encodeStamp({ wall: 1, counter: 0, replica: 'a' as ReplicaId })
    const s2 = encodeStamp({ wall: 2, counter: 0, replica: 'a' as ReplicaId })
    expect(() => lwwSetState({ x: 1 }, s2, s1)).toThrow(InvalidValueError)
    expect(() => lwwUpdateState({ x: undefined } as unknown as RecordValue, s1)).toThrow(InvalidValueError)
    expect(() => lwwUpdateState([] as unknown as RecordValue, s1)).toThrow(InvalidValueError)
    expect(() => orAddState((() => 1) as unknown as Value, s1)).toThrow(InvalidValueError)
  })
})

describe('OR set semantics', () => {
  it('add wins over a concurrent remove', () => {
    check(
      fc.property(orState, value, (base, v) => {
        const removal = orRemoveState(base, v)
        const addition = orAddState(v, encodeStamp({ wall: 99, counter: 0, replica: 'z' as ReplicaId }))
        const merged = mergeOr(mergeOr(base, removal), addition)
        expect(orHas(merged, v)).toBe(true)
        expect(orEquals(merged, mergeOr(mergeOr(base, addition), removal))).toBe(true)
      }),
    )
  })

  it('a remove removes every add of the value it observed, and nothing else', () => {
    check(
      fc.property(orState, value, (base, v) => {
        const after = mergeOr(base, orRemoveState(base, v))
        expect(orHas(after, v)).toBe(false)
        const others = orValues(base).filter((x) => !valuesEqual(x, v))
        expect(orValues(after)).toEqual(others)
      }),
    )
  })

  it('lists distinct values in value order', () => {
    check(
      fc.property(orState, (s) => {
        const values = orValues(s)
        for (let i = 1; i < values.length; i++) expect(compareValues(values[i - 1] as Value, values[i] as Value)).toBeLessThan(0)
      }),
      1_000,
    )
  })

  it('keeps removing on replay: an old add arriving after its remove stays removed', () => {
    const tag = encodeStamp({ wall: 1, counter: 0, replica: 'a' as ReplicaId })
    const add = orAddState('milk', tag)
    const removal = orRemoveState(add, 'milk')
    expect(orValues(mergeOr(mergeOr(emptyOr(), removal), add))).toEqual([])
    // A fresh add of the same value (new tag) is not covered by the old remove.
    const again = orAddState('milk', encodeStamp({ wall: 2, counter: 0, replica: 'b' as ReplicaId }))
    expect(orValues(mergeOr(mergeOr(add, removal), again))).toEqual(['milk'])
  })
})

describe('PN counter semantics', () => {
  it('equals the sum of applied deltas under any delivery order and duplicates', () => {
    const op = fc.tuple(replica, fc.integer({ min: -1_000, max: 1_000 }))
    check(
      fc.property(fc.array(op, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (ops, deliveries) => {
        // Each replica applies its own ops locally and emits deltas; the receiver gets them shuffled and duplicated.
        const local = new Map<ReplicaId, CounterState>()
        const deltas: CounterState[] = []
        for (const [who, delta] of ops) {
          const current = local.get(who) ?? emptyCounter()
          const d = counterAddState(current, who, delta)
          deltas.push(d)
          local.set(who, mergeCounter(current, d))
        }
        let received = emptyCounter()
        for (const pick of deliveries) if (deltas.length > 0) received = mergeCounter(received, deltas[pick % deltas.length] as CounterState)
        for (const d of [...deltas].reverse()) received = mergeCounter(received, d)
        expect(counterValue(received)).toBe(ops.reduce((sum, [, delta]) => sum + delta, 0))
      }),
    )
  })

  it('rejects NaN and infinite deltas', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => counterAddState(emptyCounter(), 'a' as ReplicaId, bad)).toThrow(InvalidValueError)
    }
    expect(() => counterAddState([['a' as ReplicaId, Number.MAX_VALUE, 0]], 'a' as ReplicaId, Number.MAX_VALUE)).toThrow(InvalidValueError)
  })
})

describe('changes and CrdtMap', () => {
  it('applies only what teaches it something', () => {
    const map = CrdtMap.of('lww')
    const s1 = encodeStamp({ wall: 1, counter: 0, replica: 'a' as ReplicaId })
    const s2 = encodeStamp({ wall: 2, counter: 0, replica: 'a' as ReplicaId })
    const write = lwwUpdateState(recordFromEntries([['__proto__', 'p']]), s2)
    expect(map.apply('__proto__', write)).toBeDefined()
    expect(map.apply('__proto__', write)).toBeUndefined() // duplicate
    expect(map.apply('__proto__', lwwUpdateState({ __x: 0 } as RecordValue, s1))).toBeDefined() // older but new field
    expect(map.apply('__proto__', lwwDeleteState(s1))).toBeDefined() // older tombstone still recorded
    expect(entriesOf(lwwView(map.get('__proto__') as LwwRecordState))).toEqual([['__proto__', 'p']])
    expect(map.apply('other', emptyLww())).toBeUndefined() // nothing to store
    expect(map.size).toBe(1)
    expect([...map.keys()]).toEqual(['__proto__'])
    expect(map.delete('__proto__')).toBe(true)
    expect(map.get('__proto__')).toBeUndefined()

    const counters = CrdtMap.of('counter')
    const inc = counterAddState(emptyCounter(), 'a' as ReplicaId, 3)
    expect(counters.apply('', inc)).toBeDefined()
    expect(counters.apply('', inc)).toBeUndefined()
    expect(counterValue(counters.get('') as CounterState)).toBe(3)
  })

  it('merges changes of one key and refuses to mix keys', () => {
    const s1 = encodeStamp({ wall: 1, counter: 0, replica: 'a' as ReplicaId })
    const a = { kind: 'or', map: 'tags', key: 'k', state: orAddState('x', s1) } as const
    const b = { kind: 'or', map: 'tags', key: 'k', state: orRemoveState(a.state, 'x') } as const
    const merged = mergeChange(a, b)
    expect(merged.kind === 'or' && orValues(merged.state)).toEqual([])
    expect(changeIsEmpty({ kind: 'or', map: 'tags', key: 'k', state: emptyOr() })).toBe(true)
    expect(changeIsEmpty(merged)).toBe(false)
    expect(() => mergeChange(a, { ...b, key: 'other' })).toThrow(InternalError)
    expect(() => mergeChange(a, { kind: 'counter', map: 'tags', key: 'k', state: [] })).toThrow(InternalError)
  })
})

describe('OR deltas', () => {
  it('every delta merges idempotently into its base', () => {
    check(fc.property(orState, orDelta(orState), (s, d) => orEquals(mergeOr(mergeOr(s, d), d), mergeOr(s, d))), 1_000)
  })
})
