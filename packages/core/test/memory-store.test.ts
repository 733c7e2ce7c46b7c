import { describe, expect, it } from 'vitest'
import { InvalidValueError, StoreError } from '../src/errors'
import { encodeStamp } from '../src/clock'
import { lwwUpdateState } from '../src/crdt'
import type { ReplicaId, Value } from '../src/types'
import { VALUE_LIMITS, assertRecord } from '../src/value'
import { MemoryStore } from '../src/store/memory-store'
import type { Store } from '../src/store/store'
import { runStoreTests, valueDifference } from '../src/testing/store-suite'
import { runSyncStoreTests } from '../src/testing/sync-store-suite'

runStoreTests('memory', async () => new MemoryStore(), {
  reopen: async (store: Store) => {
    await store.close()
    return (store as MemoryStore).reopen()
  },
})

runSyncStoreTests('memory', () => new MemoryStore(), {
  reopen: async (store) => {
    await store.close()
    return (store as MemoryStore).reopen()
  },
})

describe('MemoryStore', () => {
  it('names itself memory', () => {
    expect(new MemoryStore().name).toBe('memory')
  })

  it('refuses a scan limit that is not a positive integer', async () => {
    const store = new MemoryStore()
    await expect(store.scan('c', { limit: 0 })).rejects.toBeInstanceOf(StoreError)
    await expect(store.scan('c', { limit: 1.5 })).rejects.toBeInstanceOf(StoreError)
  })

  it('orders scans by UTF-16 code units, like IndexedDB', async () => {
    const store = new MemoryStore()
    const keys = ['b', 'a', '', 'aa', 'Z', '😀', '\uffff', 'é']
    await store.commit({ puts: keys.map((key) => ({ collection: 'c', key, value: key })) })
    expect((await store.scan('c')).map((entry) => entry.key)).toEqual(['', 'Z', 'a', 'aa', 'b', 'é', '😀', '\uffff'])
  })
})

describe('valueDifference (the suite\'s comparison)', () => {
  it('finds the differences a store could introduce', () => {
    const proto = (value: unknown): Record<string, unknown> => Object.defineProperty({}, '__proto__', { value, enumerable: true, writable: true, configurable: true })
    expect(valueDifference({ a: [1, { b: 2n }] }, { a: [1, { b: 2n }] })).toBeNull()
    expect(valueDifference(proto(1), proto(1))).toBeNull()
    expect(valueDifference({ a: 1n }, { a: 1 })).toMatch(/^value\."a": expected a number/)
    expect(valueDifference(Buffer.from([1]), new Uint8Array([1]))).toMatch(/prototype/)
    expect(valueDifference(new Date(1), new Date(2))).not.toBeNull()
    expect(valueDifference({ a: null }, {})).toMatch(/keys/)
    expect(valueDifference({}, proto(1))).toMatch(/keys/)
    expect(valueDifference(Object.create(null), {})).toMatch(/prototype/)
    expect(valueDifference([1, 2], [1])).toMatch(/items/)
    expect(valueDifference(-0, 0)).not.toBeNull()
  })
})

describe('depth: what the write path accepts, a store accepts', () => {
  function nested(levels: number): Value {
    let value: Value = 1
    for (let i = 0; i < levels; i++) value = [value]
    return value
  }

  it('stores an LWW state whose field value nests exactly to the limit, and the write path refuses one level more', async () => {
    const store = new MemoryStore()
    const stamp = encodeStamp({ wall: 1, counter: 0, replica: 'r' as ReplicaId })
    const atLimit = { body: nested(VALUE_LIMITS.maxDepth) }
    const state = lwwUpdateState(atLimit, stamp)
    await expect(store.commit({ puts: [{ collection: 'notes', key: 'n1', value: state as unknown as Value }] })).resolves.toBeDefined()
    expect(() => assertRecord({ body: nested(VALUE_LIMITS.maxDepth + 1) })).toThrow(InvalidValueError)
  })
})
