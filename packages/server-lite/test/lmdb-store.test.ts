/**
 * The LMDB store passes core's store acceptance suite (values of every kind, tricky
 * names, paging, atomic validated batches, sequence across reopen, parallel commits,
 * closed-store errors), also with its Merkle leaf sums and scan order folded after every
 * few changes, and concurrent commits share transactions (group commit); a log trim past
 * the pending changes keeps their leaf deltas (they live in the log rows).
 */
import { runStoreTests, runSyncStoreTests } from '@outpost/core/testing'
import { lwwUpdateState, type Stamp, type Store, type WriteRequest } from '@outpost/core'
import { afterAll, describe, expect, it } from 'vitest'
import { LmdbStore } from '../src/index'
import { tempDir } from './helpers/client'

const dirs: { remove: () => void }[] = []
const paths = new WeakMap<Store, string>()

function openAt(path: string): Store {
  const store = LmdbStore.open({ path })
  paths.set(store, path)
  return store
}

runStoreTests(
  'lmdb',
  async () => {
    const dir = tempDir('outpost-lmdb-')
    dirs.push(dir)
    return openAt(dir.path)
  },
  {
    reopen: async (store) => {
      const path = paths.get(store) as string
      await store.close()
      return openAt(path)
    },
  },
)

runSyncStoreTests(
  'lmdb',
  () => {
    const dir = tempDir('outpost-lmdb-sync-')
    dirs.push(dir)
    return openAt(dir.path) as LmdbStore
  },
  {
    reopen: async (store) => {
      const path = paths.get(store) as string
      await store.close()
      return openAt(path) as LmdbStore
    },
  },
)

// Leaf sums and scan order are folded lazily (lmdb-pending.ts): the suite again with a fold
// every 3 changes (pending rows merged with folded ones at every read) and at every write.
for (const foldAt of [3, 1]) {
  const foldPaths = new WeakMap<Store, string>()
  const openFolding = (path: string): LmdbStore => {
    const store = LmdbStore.open({ path, foldAt })
    foldPaths.set(store, path)
    return store
  }
  runSyncStoreTests(
    `lmdb, folding every ${foldAt} change(s)`,
    () => {
      const dir = tempDir('outpost-lmdb-fold-')
      dirs.push(dir)
      return openFolding(dir.path)
    },
    {
      reopen: async (store) => {
        const path = foldPaths.get(store) as string
        await store.close()
        return openFolding(path)
      },
    },
  )
}

describe('LmdbStore group commit', () => {
  it('lands 20,000 concurrent single-put commits with distinct sequence numbers, quickly', async () => {
    const dir = tempDir('outpost-lmdb-')
    dirs.push(dir)
    const store = openAt(dir.path)
    const started = performance.now()
    const results = await Promise.all(
      Array.from({ length: 20_000 }, (_, i) => store.commit({ puts: [{ collection: 'c', key: `k${i}`, value: { i } }] })),
    )
    const ms = performance.now() - started
    const seqs = new Set(results.map((r) => r.seq))
    expect(seqs.size).toBe(20_000)
    expect(await store.count('c')).toBe(20_000)
    console.log(`lmdb: 20,000 concurrent commits in ${ms.toFixed(0)} ms (${Math.round(20_000 / (ms / 1000))} commits/s)`)
    await store.close()
  })
})

afterAll(() => {
  for (const dir of dirs) dir.remove()
})

describe('LmdbStore key encoding', () => {
  it('scans keys made of U+FFFF and lone surrogates, and keeps collections apart', async () => {
    const dir = tempDir('outpost-lmdb-')
    dirs.push(dir)
    const store = openAt(dir.path)
    const keys = ['\uffff\uffff\uffff\uffff', '\ud800', '\udfff\ud800', 'a', '\uffff']
    await store.commit({ puts: [...keys.map((key, i) => ({ collection: '\uffff', key, value: i })), { collection: '\uffff\uffff', key: 'other', value: 1 }] })
    const page = await store.scan('\uffff')
    expect(page.map((e) => e.key).sort()).toEqual([...keys].sort())
    expect(await store.getMany('\uffff', keys)).toEqual(keys.map((_, i) => i))
    expect((await store.collections()).sort()).toEqual(['\uffff', '\uffff\uffff'])
    await store.close()
  })
})

describe('LmdbStore log trim', () => {
  it('keeps the leaf sums and scan order of pending changes whose log rows a trim removes', async () => {
    const write = (key: string, n: number): WriteRequest => {
      const state = lwwUpdateState({ n }, `${(1_700_000_000_000 + n).toString(36).padStart(10, '0')}-0000-trim` as Stamp)
      return { map: 'm:t', kind: 'lww', key, decide: () => ({ state }) }
    }
    const open = (): LmdbStore => {
      const dir = tempDir('outpost-lmdb-trim-')
      dirs.push(dir)
      // No fold by size: every change is pending when the log is trimmed.
      return LmdbStore.open({ path: dir.path, foldAt: 1_000 })
    }
    const trimmed = open()
    const reference = open()
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`)
    for (const store of [trimmed, reference]) {
      await store.applyWrites(keys.map((key, i) => write(key, i)))
      await store.applyWrites(keys.slice(0, 10).map((key, i) => write(key, 100 + i)))
    }
    expect(await trimmed.trimLog('m:t', 55)).toBe(55)
    expect(await trimmed.readLog('m:t', 0, 100)).toEqual((await reference.readLog('m:t', 0, 100)).slice(55))
    expect(await trimmed.leafSums('m:t')).toEqual(await reference.leafSums('m:t'))
    expect(await trimmed.scanRecords('m:t', { limit: 100 })).toEqual(await reference.scanRecords('m:t', { limit: 100 }))
    // And the writes after it still add up.
    for (const store of [trimmed, reference]) await store.applyWrites([write('k1', 200), write('new', 201)])
    expect(await trimmed.leafSums('m:t')).toEqual(await reference.leafSums('m:t'))
    expect(await trimmed.scanRecords('m:t', { limit: 100 })).toEqual(await reference.scanRecords('m:t', { limit: 100 }))
    await trimmed.close()
    await reference.close()
  })
})
