/**
 * Resume by cursor from the client side (issue 11), engines on fake IndexedDB against the
 * real relay:
 * - a reader that was away while 100 of N records changed resumes by cursor after a
 *   restart (the cursor was persisted with the data it covers), receiving a fraction of
 *   the frames and bytes a reader without a cursor needs for its Merkle descent (both
 *   printed); its offline writes still go up through the outbox; all converge;
 *   A resume by cursor builds no Merkle tree (the subscribe carries the cursor alone);
 * - a relay whose store was wiped refuses the cursor: the client subscribes again with its
 *   root, falls back to Merkle, re-uploads what the relay lost, and keeps a cursor only from a
 *   sync that needed no upload.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { IDBFactory } from 'fake-indexeddb'
import type { Engine } from '../src/engine'
import type { Row } from '../src/engine-api'
import { IdbStore } from '../src/store/idb-store'
import { ShapeReplica } from '../src/sync/shape-replica'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const cleanups: (() => Promise<void> | void)[] = []
const engines = new Set<Engine>()
afterEach(async () => {
  for (const engine of engines) await engine.close()
  engines.clear()
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Where the engines of these tests keep the cursor of the shape `{ map: 'docs' }`. */
const DOCS_CURSOR = new ShapeReplica({ map: 'docs' }).cursorKey
/** The IndexedDB database name of `engineOn` engines. */
const DB_NAME = 'outpost:test'

async function startRelay(config: Parameters<typeof createRelay>[0] = {}): Promise<{ relay: Relay; wipe: () => void }> {
  const dir = tempDir()
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', ...config })
  let closed = false
  cleanups.push(async () => {
    if (!closed) await relay.close()
    dir.remove()
  })
  return {
    relay,
    wipe: () => {
      closed = true
      dir.remove()
    },
  }
}

function start(url: string, idb: IDBFactory, options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(idb, { url, ...options })
  engines.add(engine)
  return engine
}

async function stop(engine: Engine): Promise<void> {
  await engine.close()
  engines.delete(engine)
}

async function live(engine: Engine): Promise<void> {
  unwrap(await engine.ready())
  await waitFor('live', async () => (await engine.status()).connection === 'live', 30_000)
}

async function snapshot(engine: Engine, map: string): Promise<Map<string, unknown>> {
  let rows: readonly Row[] = []
  const id = unwrap(await engine.subscribeQuery({ map }, (r) => (rows = r)))
  await engine.unsubscribeQuery(id)
  return new Map(rows.map((r) => [r.key, r.value]))
}

/** The cursor stored in `idb` (the engine using it must be closed). */
async function storedCursor(idb: IDBFactory): Promise<unknown> {
  const store = await IdbStore.open(DB_NAME, { indexedDB: idb })
  try {
    return await store.getMeta(DOCS_CURSOR)
  } finally {
    await store.close()
  }
}

async function same(a: Engine, b: Engine, map: string): Promise<boolean> {
  const [x, y] = [await snapshot(a, map), await snapshot(b, map)]
  return x.size === y.size && [...x].every(([key, value]) => JSON.stringify(y.get(key)) === JSON.stringify(value))
}

describe('resume by cursor', () => {
  it('resumes by cursor after a restart with 100 of 5,000 changed, far cheaper than a Merkle descent, and converges', async () => {
    const { relay } = await startRelay()
    const N = 5_000
    const writer = start(relay.url, freshIdb())
    unwrap(await writer.subscribeShape({ map: 'docs' }))
    await live(writer)
    const written = await Promise.all(Array.from({ length: N }, (_, i) => writer.set('docs', `d${i}`, { body: `document ${i}`.padEnd(120, '.'), n: i })))
    expect(written.every((r) => r.ok)).toBe(true)
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0, 60_000)

    // Two readers take the whole map; B will lose its cursor, so it shows the Merkle path.
    const idbA = freshIdb()
    const idbB = freshIdb()
    const readers = [start(relay.url, idbA), start(relay.url, idbB)]
    for (const reader of readers) {
      unwrap(await reader.subscribeShape({ map: 'docs' }))
      await live(reader)
      await waitFor('initial slice', () => reader.receivedRecords >= N, 60_000)
      expect(reader.syncStats.resumes).toMatchObject({ slice: 1, cursor: 0 })
      await waitFor('cursor stored', async () => typeof (await reader.store?.getMeta(DOCS_CURSOR)) === 'string', 10_000)
      await stop(reader)
    }
    const firstCursor = await storedCursor(idbA)
    expect(typeof firstCursor).toBe('string')
    const store = await IdbStore.open(DB_NAME, { indexedDB: idbB })
    await store.commit({ meta: [{ key: DOCS_CURSOR, value: null }] })
    await store.close()

    // 100 of N change while the readers are away: 99 updates and a delete.
    for (let i = 0; i < 99; i++) unwrap(await writer.update('docs', `d${i * 50}`, { body: `changed ${i}` }))
    unwrap(await writer.delete('docs', 'd4999'))
    await waitFor('changes acked', async () => (await writer.status()).pendingWrites === 0, 30_000)

    // A restarts offline: the data its cursor covers is in its store; it writes offline, then connects.
    const a = start(relay.url, idbA, { startOffline: true })
    unwrap(await a.ready())
    expect((await snapshot(a, 'docs')).size).toBe(N)
    for (let i = 0; i < 3; i++) unwrap(await a.set('docs', `offline-${i}`, { body: `written offline ${i}` }))
    await a.setOffline(false)
    await live(a)
    await waitFor('A has the 100 changes', async () => {
      const snap = await snapshot(a, 'docs')
      return !snap.has('d4999') && (snap.get('d4900') as { body?: string } | undefined)?.body === 'changed 98'
    }, 30_000)
    await waitFor('A offline writes acked', async () => (await a.status()).pendingWrites === 0, 30_000)
    const cursorStats = a.syncStats
    // Its subscribe carried the cursor alone: no Merkle tree was built over its 5,000 records.
    expect(a.shapeReplicas().map((replica) => replica.treeBuilt)).toEqual([false])

    const b = start(relay.url, idbB)
    await live(b)
    await waitFor('B has the 100 changes', async () => {
      const snap = await snapshot(b, 'docs')
      return !snap.has('d4999') && (snap.get('d4900') as { body?: string } | undefined)?.body === 'changed 98'
    }, 30_000)
    const merkleStats = b.syncStats

    expect(cursorStats.resumes).toMatchObject({ cursor: 1, merkle: 0, slice: 0 })
    expect(merkleStats.resumes).toMatchObject({ cursor: 0, merkle: 1 })
    console.log(
      `[figure] reconnect after 100 of ${N} changed: by cursor ${cursorStats.framesReceived} frames / ${cursorStats.bytesReceived} B received, ${cursorStats.framesSent} frames sent; ` +
        `by Merkle ${merkleStats.framesReceived} frames / ${merkleStats.bytesReceived} B received, ${merkleStats.framesSent} frames sent (same relay, same data)`,
    )
    expect(cursorStats.framesReceived).toBeLessThan(merkleStats.framesReceived)
    expect(cursorStats.framesSent).toBeLessThan(merkleStats.framesSent)

    // Everyone converges, A's offline writes included; A keeps the newer cursor.
    await waitFor('converged', async () => (await same(writer, a, 'docs')) && (await same(writer, b, 'docs')), 30_000)
    expect((await snapshot(writer, 'docs')).has('offline-2')).toBe(true)
    await waitFor('A cursor moved on', async () => {
      const now = await a.store?.getMeta(DOCS_CURSOR)
      return typeof now === 'string' && now !== firstCursor
    })
  })

  it('drops the cursor with the data when the relay says resync (away past the tombstone horizon)', async () => {
    const { relay } = await startRelay({ tombstoneHorizonMs: 400 })
    const writer = start(relay.url, freshIdb())
    for (let i = 0; i < 20; i++) unwrap(await writer.set('docs', `d${i}`, { n: i }))
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0 && (await writer.status()).connection === 'live')
    const idb = freshIdb()
    let reader = start(relay.url, idb)
    unwrap(await reader.subscribeShape({ map: 'docs' }))
    await live(reader)
    await waitFor('cursor stored', async () => typeof (await reader.store?.getMeta(DOCS_CURSOR)) === 'string')
    await stop(reader)
    await new Promise((resolve) => setTimeout(resolve, 600))
    unwrap(await writer.delete('docs', 'd0'))
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0)
    reader = start(relay.url, idb)
    await live(reader)
    // The shape was dropped, and its cursor with it: a fresh slice, not a replay.
    expect(reader.syncStats.resumes).toMatchObject({ slice: 1, cursor: 0 })
    await waitFor('converged', async () => same(reader, writer, 'docs'), 30_000)
    expect((await snapshot(reader, 'docs')).has('d0')).toBe(false)
  })

  it('falls back to Merkle when the relay store was wiped, re-uploads, and keeps a cursor only from a clean sync', async () => {
    const first = await startRelay()
    // The reader's own writes: a replica uploads only its own registers, so these are what it can restore.
    const idb = freshIdb()
    let reader = start(first.relay.url, idb)
    unwrap(await reader.subscribeShape({ map: 'docs' }))
    await live(reader)
    for (let i = 0; i < 300; i++) unwrap(await reader.set('docs', `d${i}`, { n: i }))
    await waitFor('reader acked', async () => (await reader.status()).pendingWrites === 0, 30_000)
    // A reconnect ends with a cursor stored (the first sync was of an empty map).
    await reader.setOffline(true)
    await reader.setOffline(false)
    await live(reader)
    await waitFor('cursor stored', async () => typeof (await reader.store?.getMeta(DOCS_CURSOR)) === 'string')
    await stop(reader)
    await first.relay.close()
    first.wipe()

    // A new relay over an empty store: the old cursor means nothing there.
    const second = await startRelay()
    reader = start(second.relay.url, idb)
    await live(reader)
    // It sent the cursor alone, was told `merkle`, and subscribed again with its root: one descent.
    expect(reader.syncStats.resumes).toMatchObject({ cursor: 0, merkle: 1 })
    expect(reader.shapeReplicas().map((replica) => replica.treeBuilt)).toEqual([true])
    const fresh = start(second.relay.url, freshIdb())
    unwrap(await fresh.subscribeShape({ map: 'docs' }))
    await live(fresh)
    await waitFor('the reader re-uploaded what the relay lost', async () => (await snapshot(fresh, 'docs')).size === 300, 30_000)
    await stop(reader)
    // That sync uploaded records (push): it kept no cursor.
    expect(await storedCursor(idb)).toBeUndefined()

    // The next connection finds the roots equal ('current') and keeps that cursor; the one after resumes by it.
    reader = start(second.relay.url, idb)
    await live(reader)
    expect(reader.syncStats.resumes).toMatchObject({ current: 1 })
    await waitFor('cursor stored', async () => typeof (await reader.store?.getMeta(DOCS_CURSOR)) === 'string')
    await stop(reader)
    unwrap(await fresh.set('docs', 'later', { n: -1 }))
    await waitFor('fresh acked', async () => (await fresh.status()).pendingWrites === 0)
    reader = start(second.relay.url, idb)
    await live(reader)
    expect(reader.syncStats.resumes).toMatchObject({ cursor: 1 })
    await waitFor('converged', async () => same(reader, fresh, 'docs'), 30_000)
  })
})
