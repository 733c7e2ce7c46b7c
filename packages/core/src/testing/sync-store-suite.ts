/**
 * The acceptance suite every {@link SyncStore} backend must pass (memory, LMDB, Postgres).
 * Call it at the top level of a vitest test file:
 *
 *   runSyncStoreTests('lmdb', () => openStore(dir()), { reopen: (s) => reopenStore(s) })
 *
 * What it holds a backend to: a write's `decide` runs with the current record (earlier
 * requests of the same call included) and its refusal touches nothing else; a decide that
 * throws unexpectedly fails the whole call and writes nothing; sequence numbers are per
 * map, gapless, and in commit order (concurrent calls included); the log answers every
 * change above its floor, with what the writer kept; scans visit every record once in
 * `(leaf path, key)` order, also within a Merkle subtree; the stored leaf sums always equal
 * the sums of the stored records' entry hashes; tombstone GC removes only what is still
 * collectable; everything survives a reopen.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidValueError, StoreError } from '../errors'
import { lwwUpdateState, mergeLww } from '../crdt/lww-record'
import type { CrdtState } from '../crdt/change'
import { stateDigest } from '../merkle/hash'
import { NodeSums, entryHash, leafPathOf } from '../merkle/node-sums'
import { recordOrder } from '../store/memory-sync'
import { decode } from '../protocol/codec'
import type { Store } from '../store/store'
import { SYNC_TREE_DEPTH, type SyncRecord, type SyncStore, type WriteRequest } from '../store/sync-store'
import type { LwwRecordState, RecordValue, Stamp } from '../types'
import { prng, testSeed } from './random'

/** Options of {@link runSyncStoreTests}. */
export interface SyncStoreTestOptions {
  /** Closes the store and opens it again over the same data; when given, durability is checked. */
  readonly reopen?: (store: SyncStore & Store) => Promise<SyncStore & Store>
}

const KEYS: readonly string[] = ['__proto__', 'constructor', '', ' ', 'ü', '日本語', '😀', 'a/b', 'x'.repeat(1024)]

let stampCounter = 0
/** A fresh stamp (tests need distinct, increasing stamps, not a real clock). */
function stamp(replica = 'suite'): Stamp {
  stampCounter++
  return `${(1_700_000_000_000 + stampCounter).toString(36).padStart(10, '0')}-0000-${replica}` as Stamp
}

/** A request that merges an LWW update of `patch` into `map/key`. */
function update(map: string, key: string, patch: RecordValue, extra: Partial<Pick<WriteRequest, 'decide'>> & { before?: string } = {}): WriteRequest {
  const delta = lwwUpdateState(patch, stamp())
  return {
    map,
    kind: 'lww',
    key,
    decide:
      extra.decide ??
      ((current) => {
        const state = current === undefined ? delta : mergeLww(current.state as LwwRecordState, delta)
        return extra.before === undefined ? { state } : { state, before: extra.before }
      }),
  }
}

/** The leaf sums a correct store must hold for `records`. */
function expectedLeaves(records: readonly SyncRecord[]): Map<string, string> {
  const sums = new NodeSums(SYNC_TREE_DEPTH)
  for (const r of records) sums.apply(leafPathOf(r.key, SYNC_TREE_DEPTH), entryHash(r.key, stateDigest('lww', r.state)), 1)
  const out = new Map<string, string>()
  const walk = (path: string): void => {
    if (path.length === SYNC_TREE_DEPTH) {
      const n = sums.node(path)
      out.set(path, `${n.hash}:${n.count}`)
      return
    }
    for (const child of sums.children(path)) walk(child.path)
  }
  if (sums.has('')) walk('')
  return out
}

async function storedLeaves(store: SyncStore, map: string): Promise<Map<string, string>> {
  const sums = new NodeSums(SYNC_TREE_DEPTH)
  const out = new Map<string, string>()
  const { head, leaves } = await store.leafSums(map)
  expect(head).toBe((await store.mapInfo(map))?.head ?? 0)
  for (const [leaf, sum] of leaves) {
    sums.addLeaf(leaf, sum)
    const n = new NodeSums(SYNC_TREE_DEPTH)
    n.addLeaf(leaf, sum)
    out.set(leaf, `${n.node(leaf).hash}:${n.node(leaf).count}`)
  }
  return out
}

async function scanAll(store: SyncStore, map: string, page: number, within?: string): Promise<SyncRecord[]> {
  const out: SyncRecord[] = []
  let after: string | undefined
  for (;;) {
    const batch = await store.scanRecords(map, { limit: page, ...(after === undefined ? {} : { after }), ...(within === undefined ? {} : { within }) })
    out.push(...batch)
    if (store.scanStoredRecords !== undefined) {
      // The stored form, where a store offers it, holds exactly the page's records.
      const stored = await store.scanStoredRecords(map, { limit: page, ...(after === undefined ? {} : { after }), ...(within === undefined ? {} : { within }) })
      const decoded = Array.from({ length: stored.count }, (_, i) => {
        const [key, seq, state] = decode(stored.bytes.subarray(stored.offsets[i], stored.offsets[i + 1]), { maxFrameBytes: Infinity, maxElements: Infinity }) as [string, number, CrdtState]
        return { key, seq, state }
      })
      expect(decoded).toEqual(batch)
    }
    if (batch.length < page) return out
    after = (batch[batch.length - 1] as SyncRecord).key
  }
}

/** Runs the suite against stores made by `make` (each test gets a fresh one). */
export function runSyncStoreTests(name: string, make: () => Promise<SyncStore & Store> | (SyncStore & Store), options: SyncStoreTestOptions = {}): void {
  describe(`SyncStore: ${name}`, () => {
    const open: (SyncStore & Store)[] = []
    const fresh = async (): Promise<SyncStore & Store> => {
      const store = await make()
      open.push(store)
      return store
    }
    afterEach(async () => {
      for (const store of open.splice(0)) await store.close().catch(() => undefined)
    })

    it('applies a write with the next sequence number and keeps its record, log entry and bookkeeping', async () => {
      const store = await fresh()
      expect(await store.mapInfo('todos')).toBeUndefined()
      const [outcome] = await store.applyWrites([update('todos', 't1', { title: 'a' }, { before: 'kept' })])
      expect(outcome?.status).toBe('applied')
      expect(outcome?.status === 'applied' && outcome.seq).toBe(1)
      expect(outcome?.status === 'applied' && outcome.previous).toBeUndefined()
      expect(await store.mapInfo('todos')).toEqual({ kind: 'lww', head: 1, floor: 0, count: 1 })
      const [record] = await store.getRecords('todos', ['t1'])
      expect(record?.seq).toBe(1)
      expect((record?.state as LwwRecordState).fields.map((f) => [f[0], f[1]])).toEqual([['title', 'a']])
      expect(await store.readLog('todos', 0, 10)).toEqual([{ seq: 1, key: 't1', before: 'kept' }])
      expect(await store.syncMaps()).toEqual(['todos'])
    })

    it('hands decide the current record, earlier requests of the same call included; refusals and no-ops touch nothing', async () => {
      const store = await fresh()
      await store.applyWrites([update('m', 'k', { a: 1 })])
      const seen: (number | undefined)[] = []
      const outcomes = await store.applyWrites([
        update('m', 'k', { b: 2 }),
        {
          map: 'm',
          kind: 'lww',
          key: 'k',
          decide: (current) => {
            seen.push(current?.seq)
            expect(Object.fromEntries((current?.state as LwwRecordState).fields.map((f) => [f[0], f[1]]))).toEqual({ a: 1, b: 2 })
            return undefined
          },
        },
        {
          map: 'm',
          kind: 'lww',
          key: 'other',
          decide: () => {
            throw new InvalidValueError('refused on purpose')
          },
        },
        update('m', 'k2', { c: 3 }),
      ])
      expect(outcomes.map((o) => o.status)).toEqual(['applied', 'unchanged', 'refused', 'applied'])
      expect(seen).toEqual([2])
      expect(outcomes[2]?.status === 'refused' && outcomes[2].error.code).toBe('INVALID_VALUE')
      expect(outcomes[3]?.status === 'applied' && outcomes[3].seq).toBe(3)
      expect((await store.getRecords('m', ['other']))[0]).toBeUndefined()
      expect((await store.readLog('m', 0, 10)).map((e) => [e.seq, e.key])).toEqual([
        [1, 'k'],
        [2, 'k'],
        [3, 'k2'],
      ])
    })

    it('writes nothing when a decide fails unexpectedly', async () => {
      const store = await fresh()
      await store.applyWrites([update('m', 'k', { a: 1 })])
      const call = store.applyWrites([
        update('m', 'k', { a: 2 }),
        {
          map: 'm',
          kind: 'lww',
          key: 'x',
          decide: () => {
            throw new TypeError('a bug')
          },
        },
      ])
      await expect(call).rejects.toBeInstanceOf(Error)
      expect((await store.mapInfo('m'))?.head).toBe(1)
      const [record] = await store.getRecords('m', ['k'])
      expect((record?.state as LwwRecordState).fields[0]?.[1]).toBe(1)
    })

    it('refuses alone a write of another kind than its map holds, also within one call', async () => {
      const store = await fresh()
      await store.applyWrites([update('m', 'k', { a: 1 })])
      const wrong = (map: string): WriteRequest => ({ map, kind: 'counter', key: 'c', decide: () => ({ state: [['r' as never, 1, 0]] as CrdtState }) })
      const outcomes = await store.applyWrites([wrong('m'), update('m', 'k2', { b: 1 }), update('fresh', 'x', { c: 1 }), wrong('fresh')])
      expect(outcomes.map((o) => o.status)).toEqual(['refused', 'applied', 'applied', 'refused'])
      expect(outcomes[0]?.status === 'refused' && outcomes[0].error.code).toBe('INVALID_VALUE')
      expect((await store.mapInfo('fresh'))?.kind).toBe('lww')
    })

    it('numbers changes per map, gapless and in commit order, across concurrent calls', async () => {
      const store = await fresh()
      const calls = Array.from({ length: 12 }, (_, i) => store.applyWrites([update(i % 2 === 0 ? 'a' : 'b', `k${i}`, { i }), update('a', `x${i}`, { i })]))
      const results = await Promise.all(calls)
      const seqsA = results.flatMap((r) => r.filter((o, j) => (j === 1 || o !== undefined) && o.status === 'applied').map((o) => (o.status === 'applied' ? o.seq : 0)))
      expect(seqsA.length).toBeGreaterThan(0)
      const logA = await store.readLog('a', 0, 1000)
      expect(logA.map((e) => e.seq)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1))
      const logB = await store.readLog('b', 0, 1000)
      expect(logB.map((e) => e.seq)).toEqual(Array.from({ length: 6 }, (_, i) => i + 1))
      expect((await store.mapInfo('a'))?.head).toBe(18)
      // Within one call, a map's changes get increasing numbers in request order.
      for (const r of results) {
        const applied = r.filter((o) => o.status === 'applied')
        expect(applied.length).toBe(2)
      }
    })

    it('reads the log in pages above any sequence number, and trims it by raising the floor', async () => {
      const store = await fresh()
      for (let i = 0; i < 30; i++) await store.applyWrites([update('m', `k${i % 7}`, { i })])
      expect((await store.readLog('m', 10, 5)).map((e) => e.seq)).toEqual([11, 12, 13, 14, 15])
      expect(await store.trimLog('m', 20)).toBe(20)
      expect((await store.mapInfo('m'))?.floor).toBe(20)
      expect((await store.readLog('m', 0, 100)).map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 21))
      expect(await store.trimLog('m', 5)).toBe(0)
      expect((await store.mapInfo('m'))?.floor).toBe(20)
    })

    it('scans every record once in (leaf path, key) order, in pages and within a subtree', async () => {
      const store = await fresh()
      const seed = testSeed('sync-store-scan')
      const random = prng(seed)
      const keys = new Set<string>(KEYS)
      while (keys.size < 400) keys.add(`k${Math.floor(random() * 1e9).toString(36)}`)
      const list = [...keys]
      for (let i = 0; i < list.length; i += 50) await store.applyWrites(list.slice(i, i + 50).map((key) => update('scan', key, { v: key.length })))
      const all = await scanAll(store, 'scan', 37)
      expect(all.map((r) => r.key)).toEqual([...list].sort(recordOrder))
      const prefix = leafPathOf(list[3] as string, SYNC_TREE_DEPTH).slice(0, 1)
      const within = await scanAll(store, 'scan', 7, prefix)
      expect(within.map((r) => r.key)).toEqual(all.filter((r) => leafPathOf(r.key, SYNC_TREE_DEPTH).startsWith(prefix)).map((r) => r.key))
      expect(within.length).toBeGreaterThan(0)
    })

    it('keeps leaf sums equal to the records it holds, through updates and removals', async () => {
      const store = await fresh()
      const seed = testSeed('sync-store-leaves')
      const random = prng(seed)
      for (let round = 0; round < 20; round++) {
        await store.applyWrites(Array.from({ length: 25 }, () => update('leaves', `k${Math.floor(random() * 120)}`, { r: round })))
      }
      expect(await storedLeaves(store, 'leaves')).toEqual(expectedLeaves(await scanAll(store, 'leaves', 1000)))
      const victims = (await scanAll(store, 'leaves', 1000)).slice(0, 30).map((r) => r.key)
      const removed = await store.removeRecords('leaves', [...victims, 'never-written'], (r) => r.key !== victims[0])
      expect(removed.sort()).toEqual(victims.slice(1).sort())
      expect(await storedLeaves(store, 'leaves')).toEqual(expectedLeaves(await scanAll(store, 'leaves', 1000)))
      expect((await store.mapInfo('leaves'))?.count).toBe((await scanAll(store, 'leaves', 1000)).length)
    })

    it('treats any string as a map name or key', async () => {
      const store = await fresh()
      for (const map of ['__proto__', 'ü', 'm'.repeat(256)]) {
        await store.applyWrites(KEYS.map((key) => update(map, key, { key })))
        const records = await store.getRecords(map, KEYS)
        expect(records.map((r) => r?.key)).toEqual([...KEYS])
        expect(records.every((r, i) => (r?.state as LwwRecordState).fields[0]?.[1] === KEYS[i])).toBe(true)
      }
    })

    if (options.reopen !== undefined) {
      const reopen = options.reopen
      it('keeps records, log, bookkeeping and leaf sums across a reopen', async () => {
        const store = await fresh()
        for (let i = 0; i < 40; i++) await store.applyWrites([update('d', `k${i % 9}`, { i }, { before: `b${i}` })])
        await store.trimLog('d', 10)
        const before = { info: await store.mapInfo('d'), log: await store.readLog('d', 0, 100), records: await scanAll(store, 'd', 100), leaves: await storedLeaves(store, 'd') }
        open.splice(open.indexOf(store), 1)
        const again = await reopen(store)
        open.push(again)
        expect(await again.mapInfo('d')).toEqual(before.info)
        expect(await again.readLog('d', 0, 100)).toEqual(before.log)
        expect(await scanAll(again, 'd', 100)).toEqual(before.records)
        expect(await storedLeaves(again, 'd')).toEqual(before.leaves)
        const [next] = await again.applyWrites([update('d', 'new', { x: 1 })])
        expect(next?.status === 'applied' && next.seq).toBe(41)
      })
    }
  })
}
