/**
 * The LMDB store's record format (lmdb-format.ts): a data directory written by the format 1
 * store (records keyed by leaf path, no format mark) or by the format 2 store (leaf deltas
 * in `pending` rows beside the log rows) is migrated when opened, losing and misreading
 * nothing; a directory marked with a newer format is refused with a StoreError
 * that says so, before anything is read.
 */
import { createHash } from 'node:crypto'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { open } from 'lmdb'
import { SYNC_TREE_DEPTH, StoreError, encode, leafPathOf, lwwUpdateState, mergeLww, type LwwRecordState, type Stamp, type SyncRecord, type WriteRequest } from '@outpost/core'
import { afterAll, describe, expect, it } from 'vitest'
import { LmdbStore } from '../src/index'
import { SYNC_FORMAT } from '../src/store/lmdb-format'
import { formatFixtureWrites } from './fixtures/lmdb-format-2'
import { tempDir } from './helpers/client'

const dirs: { remove: () => void }[] = []
afterAll(() => {
  for (const dir of dirs) dir.remove()
})

function newDir(): string {
  const dir = tempDir('outpost-lmdb-format-')
  dirs.push(dir)
  return dir.path
}

let counter = 0
function write(map: string, key: string, field: string): WriteRequest {
  counter++
  const delta = lwwUpdateState({ [field]: counter }, `${(1_700_000_000_000 + counter).toString(36).padStart(10, '0')}-0000-format` as Stamp)
  return { map, kind: 'lww', key, decide: (current) => ({ state: current === undefined ? delta : mergeLww(current.state as LwwRecordState, delta) }) }
}

function utf16(value: string): Buffer {
  return Buffer.from(value, 'utf16le').swap16()
}

function rawEnv(path: string) {
  return open<Buffer, Buffer>({ path, noSubdir: false, encoding: 'binary', keyEncoding: 'binary', maxDbs: 16 })
}

async function scanAll(store: LmdbStore, map: string, limit: number): Promise<SyncRecord[]> {
  const out: SyncRecord[] = []
  for (;;) {
    const last = out.at(-1)
    const page = await store.scanRecords(map, last === undefined ? { limit } : { after: last.key, limit })
    out.push(...page)
    if (page.length < limit) return out
  }
}

describe('LmdbStore record format', () => {
  it('migrates a format 1 directory (records keyed by leaf path) and reads it exactly as written', async () => {
    // The reference: the same writes in a store of the current format, read back through its API.
    const keys = ['__proto__', '', 'ü', '😀', 'a/b', 'x'.repeat(1200), ...Array.from({ length: 60 }, (_, i) => `k${i}`)]
    const reference = LmdbStore.open({ path: newDir() })
    await reference.applyWrites(keys.map((key) => write('m:tasks', key, 'a')))
    await reference.applyWrites(keys.slice(0, 20).map((key) => write('m:tasks', key, 'b')))
    const records = await scanAll(reference, 'm:tasks', 1_000)
    const info = await reference.mapInfo('m:tasks')
    const sums = await reference.leafSums('m:tasks')
    const log = await reference.readLog('m:tasks', 0, 1_000)
    await reference.close()
    expect(records).toHaveLength(keys.length)

    // Format 1 as its store wrote it: map id 1, `records` keyed id + leaf + key, five-field map rows, no format mark.
    const path = newDir()
    const env = rawEnv(path)
    const options = { encoding: 'binary', keyEncoding: 'binary' } as const
    const legacy = { sys: env.openDB<Buffer, Buffer>('sys', options), maps: env.openDB<Buffer, Buffer>('maps', options), records: env.openDB<Buffer, Buffer>('records', options), log: env.openDB<Buffer, Buffer>('log', options), leaves: env.openDB<Buffer, Buffer>('leaves', options) }
    const id = Buffer.from([0, 0, 0, 1])
    // Format 1's record key: map id, leaf path (2 bytes), key as UTF-16BE (a long one: its first 512 units and SHA-256).
    const recordKey = (key: string): Buffer => {
      const plain = utf16(key)
      const body = key.length <= 940 ? plain : Buffer.concat([plain.subarray(0, 1024), createHash('sha256').update(plain).digest()])
      return Buffer.concat([id, Buffer.from(leafPathOf(key, SYNC_TREE_DEPTH), 'hex'), body])
    }
    await env.transaction(() => {
      const mapId = Buffer.alloc(8)
      mapId.writeBigUInt64BE(1n)
      legacy.sys.putSync(Buffer.from('mapid'), mapId)
      legacy.maps.putSync(utf16('m:tasks'), Buffer.from(encode([1, 'lww', info?.head ?? 0, info?.floor ?? 0, info?.count ?? 0])))
      for (const [leaf, sum] of sums.leaves) {
        const value = Buffer.alloc(16)
        value.writeUInt32BE(sum.hi, 0)
        value.writeUInt32BE(sum.lo, 4)
        value.writeUInt32BE(sum.count, 12)
        legacy.leaves.putSync(Buffer.concat([id, Buffer.from(leaf, 'hex')]), value)
      }
      for (const record of records) legacy.records.putSync(recordKey(record.key), Buffer.from(encode([record.key, record.seq, record.state as never])))
      for (const entry of log) {
        const key = Buffer.alloc(12)
        id.copy(key, 0)
        key.writeBigUInt64BE(BigInt(entry.seq), 4)
        legacy.log.putSync(key, Buffer.from(encode([entry.key])))
      }
    })
    await env.close()

    const store = LmdbStore.open({ path })
    expect(await store.mapInfo('m:tasks')).toEqual(info)
    expect(await store.getRecords('m:tasks', keys)).toEqual(keys.map((key) => records.find((r) => r.key === key)))
    for (const limit of [1, 7, 1_000]) expect(await scanAll(store, 'm:tasks', limit)).toEqual(records)
    const within = leafPathOf('k3', SYNC_TREE_DEPTH).slice(0, 1)
    expect(await store.scanRecords('m:tasks', { within, limit: 1_000 })).toEqual(records.filter((r) => leafPathOf(r.key, SYNC_TREE_DEPTH).startsWith(within)))
    expect(await store.leafSums('m:tasks')).toEqual(sums)
    expect(await store.readLog('m:tasks', 0, 1_000)).toEqual(log)
    // It keeps working: a new key and an update, numbered after the migrated head.
    const [added, updated] = await store.applyWrites([write('m:tasks', 'new', 'a'), write('m:tasks', 'k1', 'c')])
    expect(added).toMatchObject({ status: 'applied', seq: (info?.head ?? 0) + 1, previous: undefined })
    expect(updated).toMatchObject({ status: 'applied', seq: (info?.head ?? 0) + 2, previous: records.find((r) => r.key === 'k1') })
    expect((await scanAll(store, 'm:tasks', 5)).map((r) => r.key).sort()).toEqual([...keys, 'new'].sort())
    await store.close()

    // Migrated once: the mark says the current format and the old records are gone.
    const after = rawEnv(path)
    expect(after.openDB<Buffer, Buffer>('sys', options).getBinary(Buffer.from('format'))?.readUInt32BE(0)).toBe(SYNC_FORMAT)
    expect([...after.openDB<Buffer, Buffer>('records', options).getKeys({})]).toHaveLength(0)
    await after.close()
  })

  it('migrates a format 2 directory (pending rows beside the log, a log trimmed past the fold) and reads it exactly as written', async () => {
    // The fixture is the format 2 store's data after these writes (see fixtures/lmdb-format-2.ts); the reference makes them now.
    const plan = formatFixtureWrites()
    const reference = LmdbStore.open({ path: newDir(), foldAt: plan.fold })
    for (const batch of plan.batches) await reference.applyWrites(batch)
    await reference.trimLog('m:tasks', plan.trimThrough)
    for (const batch of plan.after) await reference.applyWrites(batch)
    const keys = [...new Set(plan.batches.flat().concat(plan.after.flat()).map((r) => r.key))]
    const records = await scanAll(reference, 'm:tasks', 1_000)
    expect(records).toHaveLength(keys.length)

    const path = newDir()
    copyFileSync(join(import.meta.dirname, 'fixtures/lmdb-format-2/data.mdb'), join(path, 'data.mdb'))
    const store = LmdbStore.open({ path, foldAt: plan.fold })
    expect(await store.mapInfo('m:tasks')).toEqual(await reference.mapInfo('m:tasks'))
    expect(await store.getRecords('m:tasks', keys)).toEqual(await reference.getRecords('m:tasks', keys))
    for (const limit of [1, 7, 1_000]) expect(await scanAll(store, 'm:tasks', limit)).toEqual(records)
    expect(await store.leafSums('m:tasks')).toEqual(await reference.leafSums('m:tasks'))
    expect(await store.readLog('m:tasks', 0, 1_000)).toEqual(await reference.readLog('m:tasks', 0, 1_000))
    // It keeps working: new changes are pending again, and fold into what was migrated.
    const more = Array.from({ length: 2 * plan.fold }, (_, i) => write('m:tasks', i % 3 === 0 ? `k${i % 40}` : `m${i}`, 'd'))
    for (const target of [store, reference]) {
      // The same stamps for both: `write` numbers them, so each request is built once and applied to both.
      await target.applyWrites(more)
    }
    expect(await scanAll(store, 'm:tasks', 9)).toEqual(await scanAll(reference, 'm:tasks', 9))
    expect(await store.leafSums('m:tasks')).toEqual(await reference.leafSums('m:tasks'))
    expect(await store.readLog('m:tasks', 0, 1_000)).toEqual(await reference.readLog('m:tasks', 0, 1_000))
    await store.close()
    await reference.close()

    const after = rawEnv(path)
    const options = { encoding: 'binary', keyEncoding: 'binary' } as const
    expect(after.openDB<Buffer, Buffer>('sys', options).getBinary(Buffer.from('format'))?.readUInt32BE(0)).toBe(SYNC_FORMAT)
    expect([...after.openDB<Buffer, Buffer>('pending', options).getKeys({})]).toHaveLength(0)
    await after.close()
  })

  it('refuses a directory marked with a newer format, with a StoreError that says what to do', async () => {
    const path = newDir()
    const store = LmdbStore.open({ path })
    await store.applyWrites([write('m:x', 'a', 'a')])
    await store.close()
    const env = rawEnv(path)
    const mark = Buffer.alloc(4)
    mark.writeUInt32BE(SYNC_FORMAT + 1)
    await env.openDB<Buffer, Buffer>('sys', { encoding: 'binary', keyEncoding: 'binary' }).put(Buffer.from('format'), mark)
    await env.close()
    let error: unknown
    try {
      LmdbStore.open({ path })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(StoreError)
    expect((error as StoreError).message).toMatch(/newer than this relay's format/)
    expect((error as StoreError).code).toBe(new StoreError('x').code)
  })

  it('marks a new directory with its format', async () => {
    const path = newDir()
    await LmdbStore.open({ path }).close()
    const env = rawEnv(path)
    expect(env.openDB<Buffer, Buffer>('sys', { encoding: 'binary', keyEncoding: 'binary' }).getBinary(Buffer.from('format'))?.readUInt32BE(0)).toBe(SYNC_FORMAT)
    await env.close()
  })
})
