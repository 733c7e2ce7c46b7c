/**
 * The IndexedDB store's page cache: a small commit on a page the store already wrote reads
 * nothing back from IndexedDB and encodes only the records it changes, and the cache never
 * makes the store hold anything but what was committed (reopen, failed transactions,
 * callers changing their objects afterwards, splits, seeded random histories).
 */
import 'fake-indexeddb/auto'
import { IDBFactory, IDBObjectStore } from 'fake-indexeddb'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { prng, testSeed } from '@outpost/core/testing'
import type { Value } from '@outpost/core'
import { IdbStore, PAGE_MAX_RECORDS } from '../src/store/idb-store'

function record(i: number, stamp = '0000000001-0000-r'): Value {
  return { fields: [['title', `record ${i} `.padEnd(150, 'x'), stamp], ['n', i, stamp], ['tags', ['a', { i }], stamp]], deleted: null }
}

/** Counts IndexedDB `get` requests (any object store) while `run` runs. */
async function countGets(run: () => Promise<unknown>): Promise<number> {
  const spy = vi.spyOn(IDBObjectStore.prototype, 'get')
  try {
    await run()
    return spy.mock.calls.length
  } finally {
    spy.mockRestore()
  }
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('IdbStore small commits', () => {
  it('a single-record write (record + outbox entry) on pages it wrote before reads nothing back and encodes only that record', async () => {
    const store = await IdbStore.open('small-commit', { indexedDB: new IDBFactory() })
    await store.commit({ puts: Array.from({ length: 20_000 }, (_, i) => ({ collection: 'todos', key: `k${i}`, value: record(i) })) })
    // The first write to a page of a bulk load reads it once.
    await store.commit({ puts: [{ collection: 'todos', key: 'k123', value: record(-1) }, { collection: 'outbox', key: '000000000000001', value: { opId: 1, at: 5 } }] })
    for (let i = 0; i < 5; i++) {
      const before = { ...store.stats }
      const gets = await countGets(() =>
        store.commit({
          puts: [
            { collection: 'todos', key: 'k123', value: record(1000 + i) },
            { collection: 'outbox', key: String(2 + i).padStart(15, '0'), value: { opId: 2 + i, at: 5 } },
          ],
          meta: [{ key: 'opSeq', value: 2 + i }],
        }),
      )
      expect(gets).toBe(0)
      expect(store.stats.pagesRead - before.pagesRead).toBe(0)
      expect(store.stats.entriesEncoded - before.entriesEncoded).toBe(2)
      // The relay's ack: drops an outbox entry without reading its page.
      expect(await countGets(() => store.commit({ deletes: [{ collection: 'outbox', key: String(1 + i).padStart(15, '0') }] }))).toBe(0)
    }
    expect(await store.get('todos', 'k123')).toEqual(record(1004))
    expect(await store.get('todos', 'k124')).toEqual(record(124))
    expect(await store.scan('outbox')).toEqual([{ collection: 'outbox', key: '000000000000006', value: { opId: 6, at: 5 } }])
    const { seq } = await store.commit({ meta: [{ key: 'x', value: 1 }] })
    await store.close()
    expect(seq).toBeGreaterThan(12)
  })

  it('keeps what a caller changes after the commit out of later rewrites of the page', async () => {
    const factory = new IDBFactory()
    let store = await IdbStore.open('aliasing', { indexedDB: factory })
    const value = { fields: [['tags', ['a'], 's1']], deleted: null } as unknown as { fields: [string, string[], string][] }
    const raw = { list: [1, 2] }
    await store.commit({ puts: [{ collection: 'c', key: 'a', value: value as unknown as Value }, { collection: 'c', key: 'raw', value: raw }] })
    value.fields[0]?.[1].push('changed')
    raw.list.push(3)
    await store.commit({ puts: [{ collection: 'c', key: 'b', value: 1 }] })
    await store.close()
    store = await IdbStore.open('aliasing', { indexedDB: factory })
    expect(await store.getMany('c', ['a', 'raw', 'b'])).toEqual([{ fields: [['tags', ['a'], 's1']], deleted: null }, { list: [1, 2] }, 1])
    await store.close()
  })

  it('a failed transaction leaves neither the store nor the cache with its writes', async () => {
    const factory = new IDBFactory()
    let store = await IdbStore.open('failed', { indexedDB: factory })
    await store.commit({ puts: [{ collection: 'c', key: 'a', value: record(1) }] })
    await store.commit({ puts: [{ collection: 'c', key: 'b', value: record(2) }] })
    const put = IDBObjectStore.prototype.put
    const spy = vi.spyOn(IDBObjectStore.prototype, 'put').mockImplementation(function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
      if (args[1] === 'seq') throw Object.assign(new Error('quota'), { name: 'QuotaExceededError' })
      return put.apply(this, args)
    })
    await expect(store.commit({ puts: [{ collection: 'c', key: 'lost', value: record(3) }], deletes: [{ collection: 'c', key: 'a' }] })).rejects.toThrow()
    spy.mockRestore()
    await store.commit({ puts: [{ collection: 'c', key: 'd', value: record(4) }] })
    expect(await store.getMany('c', ['a', 'b', 'lost', 'd'])).toEqual([record(1), record(2), undefined, record(4)])
    await store.close()
    store = await IdbStore.open('failed', { indexedDB: factory })
    expect(await store.getMany('c', ['a', 'b', 'lost', 'd'])).toEqual([record(1), record(2), undefined, record(4)])
    expect(await store.count('c')).toBe(3)
    await store.close()
  })

  it('matches a model over a seeded random history of small commits, splits and reopens included', async () => {
    const seed = testSeed('idb-page-cache')
    const random = prng(seed)
    const factory = new IDBFactory()
    let store = await IdbStore.open('model', { indexedDB: factory })
    const model = new Map<string, Value>()
    const keyCount = PAGE_MAX_RECORDS * 3
    const pick = (): string => `k${Math.floor(random() * keyCount)}`
    for (let step = 0; step < 400; step++) {
      const puts: { collection: string; key: string; value: Value }[] = []
      const deletes: { collection: string; key: string }[] = []
      const n = 1 + Math.floor(random() * (random() < 0.1 ? 200 : 4))
      for (let j = 0; j < n; j++) {
        const key = pick()
        if (random() < 0.2) {
          deletes.push({ collection: 'm', key })
        } else {
          const r = random()
          const value: Value = r < 0.6 ? record(step * 10 + j, `stamp-${Math.floor(random() * 1000)}`) : r < 0.8 ? { fields: [], deleted: `del-${step}` } : { plain: step, list: [j] }
          puts.push({ collection: 'm', key, value })
        }
      }
      await store.commit({ puts, deletes })
      for (const { key, value } of puts) model.set(key, value)
      // Deletes apply after puts within one batch.
      for (const { key } of deletes) model.delete(key)
      if (step % 97 === 96) {
        await store.close()
        store = await IdbStore.open('model', { indexedDB: factory })
      }
    }
    const all = await store.loadCollection('m')
    expect(all.size, `seed ${seed}`).toBe(model.size)
    for (const [key, value] of model) expect(all.get(key), `${key} (seed ${seed})`).toEqual(value)
    await store.close()
    store = await IdbStore.open('model', { indexedDB: factory })
    const reopened = await store.loadCollection('m')
    expect(reopened, `seed ${seed}`).toEqual(all)
    await store.close()
  })
})
