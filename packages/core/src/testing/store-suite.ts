/**
 * The acceptance suite every {@link Store} backend must pass (IndexedDB, LMDB, Postgres,
 * memory). Call it at the top level of a vitest test file:
 *
 *   runStoreTests('lmdb', () => openLmdbStore(dir()), { reopen: (s) => reopenLmdb(s) })
 *
 * What it holds a backend to: every kind of value comes back equal and of the same type;
 * any string works as a collection name, key or field name (`__proto__` included);
 * scans page through every entry exactly once; batches are atomic and validated first;
 * sequence numbers strictly increase (across reopen too); parallel commits all land;
 * a closed store rejects every call with StoreClosedError.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidValueError, StoreClosedError } from '../errors'
import type { Value } from '../types'
import type { Store, StoreEntry } from '../store/store'

/** Options of {@link runStoreTests}. */
export interface StoreTestOptions {
  /**
   * Closes `store` and opens it again over the same data (same files, same database).
   * When given, the suite also checks that data, metadata and the sequence survive it.
   */
  readonly reopen?: (store: Store) => Promise<Store>
}

/** Names that break naive `obj[name]` or string-concatenating code; every store must treat them as plain data. */
const TRICKY_NAMES: readonly string[] = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', '', ' ', 'ü', '日本語', '😀', 'a/b', 'a.b', "it's", '\u{10FFFF}']
/** Collection names, up to the protocol's longest map name (`MESSAGE_LIMITS.maxMapNameLength`). */
const TRICKY_COLLECTIONS: readonly string[] = [...TRICKY_NAMES, 'c'.repeat(256)]
/** Keys, up to the protocol's longest key (`MESSAGE_LIMITS.maxKeyLength`, UTF-16 units). */
const TRICKY_KEYS: readonly string[] = [...TRICKY_NAMES, 'x'.repeat(1024), '😀'.repeat(256)]

/** A record exercising every kind of {@link Value}. */
function everyKind(): Value {
  const nestedProto: Record<string, Value> = {}
  Object.defineProperty(nestedProto, '__proto__', { value: { polluted: true }, enumerable: true, writable: true, configurable: true })
  const record: Record<string, Value> = {
    nil: null,
    yes: true,
    no: false,
    zero: 0,
    int: 42,
    negative: -17,
    float: 3.141592653589793,
    maxSafe: Number.MAX_SAFE_INTEGER,
    minSafe: Number.MIN_SAFE_INTEGER,
    tiny: 5e-324,
    huge: 1e300,
    infinity: Infinity,
    negativeInfinity: -Infinity,
    smallBig: 7n,
    negativeBig: -9n,
    big64: 2n ** 63n,
    hugeBig: 2n ** 200n + 12345n,
    negativeHugeBig: -(3n ** 150n),
    empty: '',
    unicode: 'héllo wörld — 日本語 😀 \u{10FFFF}',
    long: 'x'.repeat(64 * 1024),
    date: new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789)),
    epoch: new Date(0),
    beforeEpoch: new Date(-86_400_000 * 365),
    bytes: new Uint8Array([0, 1, 2, 254, 255]),
    noBytes: new Uint8Array(0),
    list: [1, 'two', null, [3, [4, [5]]], { six: 6 }],
    emptyList: [],
    emptyObject: {},
    nested: { a: { b: { c: { d: [true, false, { e: 'deep' }] } } } },
    nestedProto,
    constructor: 'a field',
    prototype: { constructor: { prototype: 1 } },
    '': 'empty field name',
  }
  Object.defineProperty(record, '__proto__', { value: 'top-level __proto__ field', enumerable: true, writable: true, configurable: true })
  return record
}

/**
 * Where `actual` differs from `expected` (a path and what differs), or null when they are
 * the same value of the same types: plain objects with the same own keys, plain
 * `Uint8Array`s, `Date`s, bigints vs numbers kept apart. (vitest's `toStrictEqual`
 * misreads records that have an own `constructor` field, so the suite compares itself.)
 */
export function valueDifference(actual: unknown, expected: unknown, path = 'value'): string | null {
  if (typeof actual !== typeof expected) return `${path}: expected a ${typeof expected}, got a ${typeof actual}`
  if (typeof expected !== 'object' || expected === null || actual === null) {
    return Object.is(actual, expected) ? null : `${path}: expected ${show(expected)}, got ${show(actual)}`
  }
  const actualObject = actual as object
  if (Object.getPrototypeOf(actualObject) !== Object.getPrototypeOf(expected)) return `${path}: expected prototype ${protoName(expected)}, got ${protoName(actualObject)}`
  if (expected instanceof Date) {
    return (actual as Date).getTime() === expected.getTime() ? null : `${path}: expected ${expected.toISOString()}, got ${String(actual)}`
  }
  if (expected instanceof Uint8Array) {
    const bytes = actual as Uint8Array
    if (bytes.length !== expected.length) return `${path}: expected ${expected.length} bytes, got ${bytes.length}`
    for (let i = 0; i < expected.length; i++) if (bytes[i] !== expected[i]) return `${path}[${i}]: expected byte ${expected[i]}, got ${bytes[i]}`
    return null
  }
  if (Array.isArray(expected)) {
    const list = actual as unknown[]
    if (list.length !== expected.length) return `${path}: expected ${expected.length} items, got ${list.length}`
    for (let i = 0; i < expected.length; i++) {
      const difference = valueDifference(list[i], expected[i], `${path}[${i}]`)
      if (difference !== null) return difference
    }
    return null
  }
  const actualKeys = Object.keys(actual as object).sort()
  const expectedKeys = Object.keys(expected).sort()
  if (actualKeys.join('\u0000') !== expectedKeys.join('\u0000')) return `${path}: expected keys [${expectedKeys.map(show).join(', ')}], got [${actualKeys.map(show).join(', ')}]`
  for (const key of expectedKeys) {
    if (!Object.hasOwn(actual as object, key)) return `${path}.${key}: not an own property`
    const difference = valueDifference((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key], `${path}.${show(key)}`)
    if (difference !== null) return difference
  }
  return null
}

function show(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  return String(value)
}

function protoName(value: object): string {
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto === null) return 'null'
  return (proto as { constructor?: { name?: string } }).constructor?.name ?? 'unknown'
}

/** Runs the store acceptance suite against stores made by `makeStore` (one fresh, empty store per test). */
export function runStoreTests(name: string, makeStore: () => Promise<Store>, options: StoreTestOptions = {}): void {
  describe(`Store acceptance: ${name}`, () => {
    const open: Store[] = []
    const fresh = async (): Promise<Store> => {
      const store = await makeStore()
      open.push(store)
      return store
    }

    afterEach(async () => {
      for (const store of open.splice(0)) await store.close().catch(ignoreAlreadyClosed)
    })

    it('returns every kind of value exactly as committed, with the same types', async () => {
      const store = await fresh()
      const value = everyKind()
      await store.commit({ puts: [{ collection: 'records', key: 'r1', value }] })
      const got = await store.get('records', 'r1')
      expect(valueDifference(got, value)).toBeNull()
      const record = got as Record<string, Value>
      expect(Object.getPrototypeOf(record)).toBe(Object.prototype)
      expect(Object.hasOwn(record, '__proto__')).toBe(true)
      expect(record['__proto__']).toBe('top-level __proto__ field')
      const nestedProto = record['nestedProto'] as Record<string, Value>
      expect(Object.getPrototypeOf(nestedProto)).toBe(Object.prototype)
      expect(Object.hasOwn(nestedProto, '__proto__')).toBe(true)
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
      expect(record['date']).toBeInstanceOf(Date)
      expect(Object.getPrototypeOf(record['bytes'])).toBe(Uint8Array.prototype)
      expect(typeof record['smallBig']).toBe('bigint')
      expect(record['hugeBig']).toBe(2n ** 200n + 12345n)
      expect(typeof record['int']).toBe('number')
    })

    it('keeps null fields and leaves missing fields missing', async () => {
      const store = await fresh()
      await store.commit({ puts: [{ collection: 'c', key: 'k', value: { present: null } }] })
      const got = (await store.get('c', 'k')) as Record<string, Value>
      expect(Object.hasOwn(got, 'present')).toBe(true)
      expect(got['present']).toBeNull()
      expect(Object.hasOwn(got, 'absent')).toBe(false)
      expect(Object.keys(got)).toEqual(['present'])
    })

    it('stores top-level values of every kind, not only records', async () => {
      const store = await fresh()
      const values: Value[] = [null, true, 0, -1.5, 12n, 2n ** 100n, '', 'text', new Date(1), new Uint8Array([9]), [], [1, [2]], {}]
      await store.commit({ puts: values.map((value, i) => ({ collection: 'scalars', key: `v${i}`, value })) })
      const got = await store.getMany('scalars', values.map((_, i) => `v${i}`))
      expect(valueDifference(got, values)).toBeNull()
    })

    it('treats tricky collection names and keys as plain strings', async () => {
      const store = await fresh()
      const puts: StoreEntry[] = []
      for (const collection of TRICKY_COLLECTIONS) {
        for (const key of TRICKY_KEYS) puts.push({ collection, key, value: { collection, key } })
      }
      await store.commit({ puts })
      for (const collection of TRICKY_COLLECTIONS) {
        expect(await store.count(collection)).toBe(TRICKY_KEYS.length)
        for (const key of TRICKY_KEYS) expect(await store.get(collection, key)).toStrictEqual({ collection, key })
        const scanned = await store.scan(collection)
        expect(scanned.map((entry) => entry.key).sort()).toEqual([...TRICKY_KEYS].sort())
        for (const entry of scanned) expect(entry.collection).toBe(collection)
      }
      expect((await store.collections()).sort()).toEqual([...TRICKY_COLLECTIONS].sort())
      expect(await store.get('__proto__', 'missing')).toBeUndefined()
      expect(await store.get('missing', '__proto__')).toBeUndefined()
      expect(await store.get('c', 'constructor')).toBeUndefined()
    })

    it('keeps collections apart, even when collection + key spell the same string', async () => {
      const store = await fresh()
      await store.commit({
        puts: [
          { collection: 'a', key: 'k', value: 'in a' },
          { collection: 'b', key: 'k', value: 'in b' },
          { collection: 'a', key: 'bk', value: 'a + bk' },
          { collection: 'ab', key: 'k', value: 'ab + k' },
        ],
      })
      expect(await store.get('a', 'k')).toBe('in a')
      expect(await store.get('b', 'k')).toBe('in b')
      expect(await store.get('a', 'bk')).toBe('a + bk')
      expect(await store.get('ab', 'k')).toBe('ab + k')
      expect(await store.count('a')).toBe(2)
      expect(await store.count('ab')).toBe(1)
      expect((await store.scan('a')).map((entry) => entry.value).sort()).toEqual(['a + bk', 'in a'])
      expect(await store.get('abk', '')).toBeUndefined()
      await store.commit({ deletes: [{ collection: 'a', key: 'bk' }] })
      expect(await store.get('ab', 'k')).toBe('ab + k')
    })

    it('copies values in and out, so changing them afterwards changes nothing stored', async () => {
      const store = await fresh()
      const value = { list: [1, 2], bytes: new Uint8Array([1, 2]), date: new Date(5) }
      await store.commit({ puts: [{ collection: 'c', key: 'k', value }] })
      value.list.push(3)
      value.bytes[0] = 99
      value.date.setTime(6)
      const got = (await store.get('c', 'k')) as { list: number[]; bytes: Uint8Array; date: Date }
      expect(got).toStrictEqual({ list: [1, 2], bytes: new Uint8Array([1, 2]), date: new Date(5) })
      got.list.push(4)
      got.bytes[1] = 99
      got.date.setTime(7)
      expect(await store.get('c', 'k')).toStrictEqual({ list: [1, 2], bytes: new Uint8Array([1, 2]), date: new Date(5) })
    })

    it('getMany returns values in the order asked, undefined for misses', async () => {
      const store = await fresh()
      await store.commit({ puts: ['a', 'b', 'c'].map((key) => ({ collection: 'c', key, value: key.toUpperCase() })) })
      expect(await store.getMany('c', ['c', 'missing', 'a', 'a', '__proto__', 'b'])).toEqual(['C', undefined, 'A', 'A', undefined, 'B'])
      expect(await store.getMany('c', [])).toEqual([])
      expect(await store.getMany('nothing-here', ['a', 'b'])).toEqual([undefined, undefined])
    })

    it('scan pages through 1,000 entries, visiting each exactly once for any page size', async () => {
      const store = await fresh()
      const keys: string[] = []
      for (let i = 0; i < 1000; i++) {
        // Unpadded numbers, shared prefixes and non-ASCII keys make any order bugs show.
        keys.push(i % 10 === 0 ? `ключ-${i}` : i % 10 === 1 ? `😀${i}` : i % 10 === 2 ? `k${i}/sub` : `k${i}`)
      }
      for (let start = 0; start < keys.length; start += 250) {
        await store.commit({ puts: keys.slice(start, start + 250).map((key, i) => ({ collection: 'paged', key, value: { n: start + i } })) })
      }
      await store.commit({ puts: [{ collection: 'other', key: 'k1', value: 'elsewhere' }] })
      expect(await store.count('paged')).toBe(1000)

      const all = await store.scan('paged')
      expect(all).toHaveLength(1000)
      const order = all.map((entry) => entry.key)
      expect(new Set(order).size).toBe(1000)
      expect([...order].sort()).toEqual([...keys].sort())
      for (const entry of all) expect(entry.value).toStrictEqual({ n: keys.indexOf(entry.key) })

      for (const limit of [1, 7, 100, 999, 1000, 5000]) {
        const seen: string[] = []
        let after: string | undefined
        for (let pages = 0; pages <= 1001; pages++) {
          const page = await store.scan('paged', after === undefined ? { limit } : { after, limit })
          expect(page.length).toBeLessThanOrEqual(limit)
          if (page.length === 0) break
          for (const entry of page) seen.push(entry.key)
          after = page[page.length - 1]?.key
        }
        // Same entries, same stable order as one full scan: each exactly once.
        expect(seen).toEqual(order)
      }
    })

    it('scan with after starts strictly after that key', async () => {
      const store = await fresh()
      await store.commit({ puts: ['a', 'b', 'c', 'd', ''].map((key) => ({ collection: 'c', key, value: key })) })
      const order = (await store.scan('c')).map((entry) => entry.key)
      expect(order).toHaveLength(5)
      for (let i = 0; i < order.length; i++) {
        const rest = await store.scan('c', { after: order[i] as string })
        expect(rest.map((entry) => entry.key)).toEqual(order.slice(i + 1))
      }
      expect(await store.scan('c', { after: order[order.length - 1] as string, limit: 10 })).toEqual([])
      expect(await store.scan('missing')).toEqual([])
      expect(await store.scan('missing', { after: 'x', limit: 5 })).toEqual([])
    })

    it('count and collections follow puts and deletes', async () => {
      const store = await fresh()
      expect(await store.collections()).toEqual([])
      expect(await store.count('c')).toBe(0)
      await store.commit({ puts: [{ collection: 'c', key: 'a', value: 1 }, { collection: 'c', key: 'b', value: 2 }, { collection: 'd', key: 'a', value: 3 }] })
      expect(await store.count('c')).toBe(2)
      expect((await store.collections()).sort()).toEqual(['c', 'd'])
      await store.commit({ puts: [{ collection: 'c', key: 'a', value: 'overwritten' }] })
      expect(await store.count('c')).toBe(2)
      expect(await store.get('c', 'a')).toBe('overwritten')
      await store.commit({ deletes: [{ collection: 'd', key: 'a' }, { collection: 'c', key: 'missing' }, { collection: 'nothing', key: 'x' }] })
      expect(await store.collections()).toEqual(['c'])
      expect(await store.get('d', 'a')).toBeUndefined()
      await store.commit({ deletes: [{ collection: 'c', key: 'a' }, { collection: 'c', key: 'b' }] })
      expect(await store.count('c')).toBe(0)
      expect(await store.collections()).toEqual([])
    })

    it('applies a batch in order: a later put of a key wins, deletes apply after puts', async () => {
      const store = await fresh()
      await store.commit({ puts: [{ collection: 'c', key: 'k', value: 'first' }, { collection: 'c', key: 'k', value: 'second' }] })
      expect(await store.get('c', 'k')).toBe('second')
      expect(await store.count('c')).toBe(1)
      await store.commit({ puts: [{ collection: 'c', key: 'gone', value: 1 }], deletes: [{ collection: 'c', key: 'gone' }] })
      expect(await store.get('c', 'gone')).toBeUndefined()
    })

    it('writes nothing from a batch that holds one invalid value', async () => {
      const store = await fresh()
      await store.commit({ puts: [{ collection: 'c', key: 'keep', value: 'kept' }], meta: [{ key: 'm', value: 'kept' }] })
      const bad = [
        { collection: 'c', key: 'new', value: 'fine' },
        { collection: 'c', key: 'bad', value: { nested: [1, undefined] } as unknown as Value },
      ]
      await expect(store.commit({ puts: bad, deletes: [{ collection: 'c', key: 'keep' }], meta: [{ key: 'm', value: null }] })).rejects.toBeInstanceOf(InvalidValueError)
      await expect(store.commit({ puts: [{ collection: 'c', key: 'new', value: 'fine' }], meta: [{ key: 'bad', value: (() => 1) as unknown as Value }] })).rejects.toBeInstanceOf(InvalidValueError)
      await expect(store.commit({ puts: [{ collection: 'c', key: 'nan', value: Number.NaN }] })).rejects.toBeInstanceOf(InvalidValueError)
      expect(await store.get('c', 'new')).toBeUndefined()
      expect(await store.get('c', 'keep')).toBe('kept')
      expect(await store.getMeta('m')).toBe('kept')
      expect(await store.getMeta('bad')).toBeUndefined()
      expect(await store.count('c')).toBe(1)
      // The store still works after a rejected batch.
      await store.commit({ puts: [{ collection: 'c', key: 'after', value: 1 }] })
      expect(await store.count('c')).toBe(2)
    })

    it('sets, reads and deletes metadata, any key', async () => {
      const store = await fresh()
      expect(await store.getMeta('cursor')).toBeUndefined()
      await store.commit({ meta: [{ key: 'cursor', value: 5 }, { key: '__proto__', value: { at: 2n ** 70n } }, { key: '', value: 'empty' }] })
      expect(await store.getMeta('cursor')).toBe(5)
      expect(await store.getMeta('__proto__')).toStrictEqual({ at: 2n ** 70n })
      expect(await store.getMeta('')).toBe('empty')
      expect(await store.getMeta('constructor')).toBeUndefined()
      await store.commit({ meta: [{ key: 'cursor', value: 6 }] })
      expect(await store.getMeta('cursor')).toBe(6)
      await store.commit({ meta: [{ key: 'cursor', value: null }] })
      expect(await store.getMeta('cursor')).toBeUndefined()
      // Metadata is not a collection.
      expect(await store.collections()).toEqual([])
    })

    it('returns strictly increasing sequence numbers', async () => {
      const store = await fresh()
      let last = -Infinity
      for (let i = 0; i < 20; i++) {
        const batch = i % 3 === 0 ? {} : { puts: [{ collection: 'c', key: `k${i}`, value: i }] }
        const { seq } = await store.commit(batch)
        expect(Number.isFinite(seq)).toBe(true)
        expect(seq).toBeGreaterThan(last)
        last = seq
      }
    })

    it('lands all of 100 parallel commits, each with its own sequence number', async () => {
      const store = await fresh()
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.commit({ puts: [{ collection: 'parallel', key: `k${i}`, value: { i } }], meta: [{ key: `m${i}`, value: i }] }),
        ),
      )
      expect(new Set(results.map((result) => result.seq)).size).toBe(100)
      expect(await store.count('parallel')).toBe(100)
      const values = await store.getMany('parallel', Array.from({ length: 100 }, (_, i) => `k${i}`))
      expect(values).toEqual(Array.from({ length: 100 }, (_, i) => ({ i })))
      expect(await store.getMeta('m99')).toBe(99)
    })

    it('rejects every call with StoreClosedError after close', async () => {
      const store = await fresh()
      await store.commit({ puts: [{ collection: 'c', key: 'k', value: 1 }] })
      await store.close()
      await expect(store.get('c', 'k')).rejects.toBeInstanceOf(StoreClosedError)
      await expect(store.getMany('c', ['k'])).rejects.toBeInstanceOf(StoreClosedError)
      await expect(store.scan('c')).rejects.toBeInstanceOf(StoreClosedError)
      await expect(store.count('c')).rejects.toBeInstanceOf(StoreClosedError)
      await expect(store.collections()).rejects.toBeInstanceOf(StoreClosedError)
      await expect(store.commit({ puts: [{ collection: 'c', key: 'k2', value: 2 }] })).rejects.toBeInstanceOf(StoreClosedError)
      await expect(store.getMeta('m')).rejects.toBeInstanceOf(StoreClosedError)
    })

    const reopen = options.reopen
    if (reopen !== undefined) {
      it('keeps data, metadata and the sequence across reopen', async () => {
        const store = await fresh()
        const value = everyKind()
        await store.commit({ puts: [{ collection: 'c', key: '__proto__', value }, { collection: 'd', key: 'gone', value: 1 }] })
        await store.commit({ deletes: [{ collection: 'd', key: 'gone' }], meta: [{ key: 'cursor', value: 2n ** 80n }] })
        const { seq: before } = await store.commit({ puts: [{ collection: 'c', key: 'k', value: 'v' }] })
        const reopened = await reopen(store)
        open.push(reopened)
        expect(valueDifference(await reopened.get('c', '__proto__'), value)).toBeNull()
        expect(await reopened.get('c', 'k')).toBe('v')
        expect(await reopened.get('d', 'gone')).toBeUndefined()
        expect(await reopened.count('c')).toBe(2)
        expect(await reopened.collections()).toEqual(['c'])
        expect(await reopened.getMeta('cursor')).toBe(2n ** 80n)
        const { seq: after } = await reopened.commit({ puts: [{ collection: 'c', key: 'k2', value: 'v2' }] })
        expect(after).toBeGreaterThan(before)
      })
    }
  })
}

/** close() after close() may reject in some backends; the suite only needs the store released. */
function ignoreAlreadyClosed(error: unknown): void {
  if (error instanceof StoreClosedError) return
  throw error
}
