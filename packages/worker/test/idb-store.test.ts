/**
 * The IndexedDB store: core's store acceptance suite under fake-indexeddb (a fresh
 * IDBFactory per store, reopen over the same factory), plus the page layout's promises:
 * pages stay bounded, a single write rewrites one bounded page, and a bulk load writes a
 * few values per thousand records.
 */
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { runStoreTests } from '@outpost/core/testing'
import type { Store, Value } from '@outpost/core'
import { IdbStore, PAGE_MAX_RECORDS } from '../src/store/idb-store'

const factories = new WeakMap<Store, IDBFactory>()
let counter = 0

async function openFresh(): Promise<Store> {
  const factory = new IDBFactory()
  const store = await IdbStore.open(`suite-${counter++}`, { indexedDB: factory })
  factories.set(store, factory)
  return store
}

runStoreTests('indexeddb', openFresh, {
  reopen: async (store) => {
    const factory = factories.get(store) as IDBFactory
    await store.close()
    const reopened = await IdbStore.open((store as IdbStore).dbName, { indexedDB: factory })
    factories.set(reopened, factory)
    return reopened
  },
})

function record(i: number): Value {
  return { fields: [['title', `record ${i} `.padEnd(150, 'x'), '0000000001-0000-r']], deleted: null }
}

describe('IdbStore page layout', () => {
  it('stores 20,000 records in few values and rewrites one bounded page per single write', async () => {
    const store = await IdbStore.open('layout', { indexedDB: new IDBFactory() })
    const puts = Array.from({ length: 20_000 }, (_, i) => ({ collection: 'todos', key: `k${i}`, value: record(i) }))
    await store.commit({ puts })
    const afterBulk = { ...store.stats }
    // A few values per thousand records, not one per record.
    expect(afterBulk.pagesWritten).toBeLessThan(20_000 / 4)
    expect(await store.count('todos')).toBe(20_000)

    const before = { ...store.stats }
    await store.commit({ puts: [{ collection: 'todos', key: 'k123', value: record(-1) }] })
    expect(store.stats.pagesWritten - before.pagesWritten).toBe(1)
    expect(store.stats.entriesWritten - before.entriesWritten).toBeLessThanOrEqual(PAGE_MAX_RECORDS)
    expect(await store.get('todos', 'k123')).toEqual(record(-1))
    expect(await store.get('todos', 'k124')).toEqual(record(124))
    await store.close()
  })

  it('keeps every record reachable across reopen after many splits', async () => {
    const factory = new IDBFactory()
    let store = await IdbStore.open('reopen-split', { indexedDB: factory })
    for (let batch = 0; batch < 10; batch++) {
      await store.commit({ puts: Array.from({ length: 500 }, (_, i) => ({ collection: 'c', key: `${batch}-${i}`, value: i })) })
    }
    await store.close()
    store = await IdbStore.open('reopen-split', { indexedDB: factory })
    const keys = Array.from({ length: 5000 }, (_, i) => `${Math.floor(i / 500)}-${i % 500}`)
    const values = await store.getMany('c', keys)
    expect(values).toEqual(keys.map((_, i) => i % 500))
    await store.commit({ deletes: keys.slice(0, 2500).map((key) => ({ collection: 'c', key })) })
    expect(await store.count('c')).toBe(2500)
    await store.close()
  })
})
