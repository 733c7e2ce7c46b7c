/**
 * The inspector reads the engine without changing it: snapshots show maps and counts,
 * shapes with cursor, root and sync state, the outbox (a write offline is in it, and leaves
 * once the relay persisted it), refused writes with their errors, the connection's
 * transitions, leases with fencing tokens, topics and presence rooms; and taking them
 * (once, many times, or through a live subscription) writes nothing to IndexedDB, sends no
 * frame, loads no map and leaves the status as it was.
 * Engines on fake IndexedDB against the real relay.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { IDBFactory } from 'fake-indexeddb'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import { ConnectionHistory } from '../src/engine/connection-history'
import { Outbox } from '../src/outbox'
import { INSPECTOR_LIMITS, type InspectorSnapshot } from '../src/inspector-api'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const relays: { relay: Relay; remove: () => void }[] = []
const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  for (const { relay, remove } of relays.splice(0)) {
    await relay.close()
    remove()
  }
})

async function startRelay(config: Parameters<typeof createRelay>[0] = {}): Promise<Relay> {
  const dir = tempDir()
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', ...config })
  relays.push({ relay, remove: dir.remove })
  return relay
}

/** An engine whose connection stays quiet while idle (no pings), so frame counts only move when something is sent. */
function start(idb: IDBFactory, relay: Relay | undefined): Engine {
  const engine = engineOn(idb, { ...(relay === undefined ? {} : { url: relay.url }), pingMs: 600_000, deadMs: 1_200_000 })
  engines.add(engine)
  return engine
}

/** Every object store of the engine's IndexedDB database, read through a second connection. */
async function dumpIdb(idb: IDBFactory, name = 'outpost:test'): Promise<Record<string, [unknown, unknown][]>> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = idb.open(name)
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  const out: Record<string, [unknown, unknown][]> = {}
  for (const storeName of [...db.objectStoreNames]) {
    const tx = db.transaction(storeName, 'readonly')
    const store = tx.objectStore(storeName)
    const [keys, values] = await Promise.all(
      [store.getAllKeys(), store.getAll()].map((request) => new Promise<unknown[]>((resolve, reject) => {
        request.onsuccess = () => resolve(request.result as unknown[])
        request.onerror = () => reject(request.error)
      })),
    )
    out[storeName] = (keys as unknown[]).map((key, i) => [key, (values as unknown[])[i]])
  }
  db.close()
  return out
}

async function snapshot(engine: Engine): Promise<InspectorSnapshot> {
  return unwrap(await engine.inspect())
}

describe('the engine inspector', () => {
  it('shows maps, shapes, the outbox, transitions, leases and topics; a write offline is in the outbox until persisted', async () => {
    const relay = await startRelay()
    const engine = start(freshIdb(), relay)
    unwrap(await engine.subscribeShape({ map: 'tasks' }))
    await waitFor('live', async () => (await engine.status()).connection === 'live')
    unwrap(await engine.set('tasks', 't1', { title: 'one', done: false }))
    unwrap(await engine.set('tasks', 't2', { title: 'two', done: false }))
    unwrap(await engine.delete('tasks', 't2'))
    await waitFor('persisted', async () => (await engine.status()).pendingWrites === 0)
    const lease = unwrap(await engine.acquireLock('invoice:9', 10_000, 0, () => undefined))
    unwrap(await engine.subscribeTopic('presence:board', 'tab-1', () => undefined))
    unwrap(await engine.subscribeTopic('presence:board', 'tab-2', () => undefined))
    unwrap(await engine.subscribeTopic('chat', 'tab-1', () => undefined))
    await waitFor('a cursor', async () => (await snapshot(engine)).shapes.entries[0]?.cursor !== null)

    const live = await snapshot(engine)
    expect(live.runtime).toMatchObject({ mode: 'in-page', database: 'test', durable: true, storage: 'indexeddb', replicaId: engine.replicaId })
    expect(live.connection.state).toBe('live')
    expect(live.connection.relayUrl).toBe(relay.url)
    expect(live.connection.transitions.map((t) => t.to)).toEqual(['connecting', 'handshaking', 'syncing', 'live'])
    expect(live.connection.transitions[0]?.from).toBe('offline')
    expect(live.maps.entries).toContainEqual({ kind: 'lww', map: 'tasks', loaded: true, stored: 2, records: 1 })
    // The shape loads `tasks` in every kind; the kinds that hold nothing are not listed.
    expect(live.maps.entries.filter((m) => m.map === 'tasks').map((m) => m.kind)).toEqual(['lww'])
    const shape = live.shapes.entries[0]
    expect(shape).toMatchObject({ id: expect.any(String), shape: { map: 'tasks' }, members: 2, sync: 'synced' })
    expect(shape?.root).toMatch(/^[0-9a-f]{16}$/)
    expect(shape?.root).not.toBe('0000000000000000')
    expect(live.outbox).toMatchObject({ pending: 0, entries: [], truncated: 0 })
    expect(live.locks.entries).toEqual([{ id: lease.id, name: 'invoice:9', token: lease.token, expiresAt: lease.expiresAt }])
    expect(lease.token).toBeGreaterThan(0)
    expect(live.topics.entries).toEqual(
      expect.arrayContaining([
        { topic: 'presence:board', subscribers: 2, presenceRoom: 'board' },
        { topic: 'chat', subscribers: 1, presenceRoom: null },
      ]),
    )

    // Offline, a write waits in the outbox, shown with what it does; back online it leaves.
    await engine.setOffline(true)
    await waitFor('offline', async () => (await engine.status()).connection === 'offline')
    const { opId } = unwrap(await engine.update('tasks', 't1', { done: true }))
    const offline = await snapshot(engine)
    expect(offline.outbox.pending).toBe(1)
    expect(offline.outbox.entries).toEqual([
      { opId, kind: 'lww', map: 'tasks', key: 't1', at: expect.any(Number), op: 'update done', preview: '{"done":true}', sent: false },
    ])
    expect(offline.shapes.entries[0]?.sync).toBe('waiting')
    expect(offline.connection.transitions.at(-1)).toMatchObject({ from: 'live', to: 'offline' })
    expect(offline.locks.entries).toEqual([]) // a lease is lost with its connection
    await engine.setOffline(false)
    await waitFor('the write persisted', async () => (await snapshot(engine)).outbox.pending === 0)
    const after = await snapshot(engine)
    expect(after.outbox.entries).toEqual([])
    expect(after.connection.transitions.map((t) => t.to).slice(-4)).toEqual(['connecting', 'handshaking', 'syncing', 'live'])
  })

  it('reading changes nothing: no IndexedDB write, no frame sent, no map loaded, the same status', async () => {
    const relay = await startRelay()
    const idb = freshIdb()
    // Data in a map this engine will not use, left by an earlier run.
    const earlier = start(idb, undefined)
    for (const key of ['a', 'b', 'c']) unwrap(await earlier.set('archive', key, { n: key }))
    await earlier.close()
    engines.delete(earlier)

    const engine = start(idb, relay)
    unwrap(await engine.subscribeShape({ map: 'tasks' }))
    await waitFor('live', async () => (await engine.status()).connection === 'live')
    unwrap(await engine.set('tasks', 't1', { title: 'one' }))
    await waitFor('persisted', async () => (await engine.status()).pendingWrites === 0)
    await waitFor('a cursor', async () => (await snapshot(engine)).shapes.entries[0]?.cursor !== null)
    await engine.flush()

    const idbBefore = await dumpIdb(idb)
    expect(idbBefore['pages']?.length).toBeGreaterThan(0) // the dump sees the engine's data
    const statusBefore = await engine.status()
    const framesBefore = engine.syncStats.framesSent
    const received = engine.receivedRecords

    const first = await snapshot(engine)
    for (let i = 0; i < 20; i++) await snapshot(engine)
    const pushed: InspectorSnapshot[] = []
    const sub = await engine.subscribeInspector((s) => void pushed.push(s))
    await waitFor('a pushed snapshot', () => pushed.length > 0)
    await engine.unsubscribeInspector(sub)
    const last = await snapshot(engine)

    // The map on disk is counted from the store, and stays out of memory.
    expect(first.maps.entries).toContainEqual({ kind: 'lww', map: 'archive', loaded: false, stored: 3, records: null })
    expect(last.maps.entries).toContainEqual({ kind: 'lww', map: 'archive', loaded: false, stored: 3, records: null })
    expect({ ...pushed[0], at: 0 }).toEqual({ ...first, at: 0 })
    await engine.flush()
    expect(await dumpIdb(idb)).toEqual(idbBefore)
    expect(engine.syncStats.framesSent).toBe(framesBefore)
    expect(engine.receivedRecords).toBe(received)
    expect(await engine.status()).toEqual(statusBefore)
  })

  it('lists writes the relay refused, with their errors, after they left the outbox', async () => {
    const relay = await startRelay({ rules: { maps: { archive: { read: 'public', write: 'none' } } } })
    const engine = start(freshIdb(), relay)
    // Inspecting an engine that has not opened its storage does not open it.
    expect((await snapshot(engine)).runtime).toMatchObject({ storage: null, replicaId: null })
    expect((await engine.status()).durable).toBe(false)
    expect(engine.replicaId).toBeUndefined()
    unwrap(await engine.ready())
    await waitFor('live', async () => (await engine.status()).connection === 'live')
    const { opId } = unwrap(await engine.set('archive', 'a1', { n: 1 }))
    // The refusal is logged, then the write leaves the outbox once that is stored.
    await waitFor('the refusal', async () => {
      const s = await snapshot(engine)
      return s.rejected.count === 1 && s.outbox.pending === 0
    })
    const s = await snapshot(engine)
    expect(s.rejected.entries).toEqual([{ opId, map: 'archive', key: 'a1', error: expect.objectContaining({ code: 'FORBIDDEN' }), at: expect.any(Number) }])
  })

  it('keeps the newest transitions (bounded, one per change of state) and at most 16 live subscribers', async () => {
    const history = new ConnectionHistory()
    history.observe('offline', 1)
    expect(history.list()).toEqual([])
    const states = ['connecting', 'handshaking', 'syncing', 'live', 'backing-off'] as const
    for (let i = 0; i < 40; i++) {
      history.observe(states[i % states.length] as (typeof states)[number], 100 + i, i === 39 ? { code: 'TIMEOUT', message: 'no frame' } : undefined)
      history.observe(states[i % states.length] as (typeof states)[number], 200 + i)
    }
    const kept = history.list()
    expect(kept).toHaveLength(INSPECTOR_LIMITS.transitions)
    expect(kept.map((t) => t.at)).toEqual(Array.from({ length: 32 }, (_, i) => 108 + i))
    expect(kept.at(-1)).toEqual({ from: 'live', to: 'backing-off', at: 139, error: { code: 'TIMEOUT', message: 'no frame' } })

    const engine = start(freshIdb(), undefined)
    const heard = new Map<number, number>()
    const ids: number[] = []
    for (let i = 0; i < INSPECTOR_LIMITS.subscribers + 1; i++) ids.push(await engine.subscribeInspector(() => void heard.set(i, (heard.get(i) ?? 0) + 1)))
    await waitFor('every first snapshot', () => heard.size === INSPECTOR_LIMITS.subscribers + 1)
    unwrap(await engine.set('notes', 'n1', { text: 'x' }))
    await waitFor('pushes after the write', () => (heard.get(INSPECTOR_LIMITS.subscribers) ?? 0) > 1)
    // The oldest subscription was ended by the 17th: it heard only its first snapshot.
    expect(heard.get(0)).toBe(1)
    expect(heard.get(1)).toBeGreaterThan(1)
    for (const id of ids) await engine.unsubscribeInspector(id)
  })

  it('lists the oldest pending writes without sorting the outbox, whatever order they were added in', () => {
    const outbox = new Outbox()
    const ids = [9, 3, 14, 1, 7, 12, 2, 11, 5, 8, 4, 13, 6, 10]
    for (const opId of ids) outbox.add({ opId, change: { kind: 'lww', map: 'm', key: `k${opId}`, state: { fields: [], deleted: null } }, at: opId })
    expect(outbox.oldest(5).map((e) => e.opId)).toEqual([1, 2, 3, 4, 5])
    expect(outbox.oldest(100).map((e) => e.opId)).toEqual(outbox.pending().map((e) => e.opId))
    expect(outbox.oldest(1).map((e) => e.opId)).toEqual([1])
  })

  it('the live feed pushes after a change, and ends with unsubscribe', async () => {
    const engine = start(freshIdb(), undefined)
    unwrap(await engine.set('notes', 'n1', { text: 'x' }))
    const pushed: InspectorSnapshot[] = []
    const sub = await engine.subscribeInspector((s) => void pushed.push(s))
    await waitFor('the first snapshot', () => pushed.length === 1)
    unwrap(await engine.set('notes', 'n2', { text: 'y' }))
    // The record shows once in memory, its outbox entry once committed: both reach the feed.
    await waitFor('a snapshot with n2 and its outbox entry', () => pushed.some((s) => s.maps.entries.some((m) => m.map === 'notes' && m.records === 2) && s.outbox.pending === 2))
    expect(pushed.at(-1)?.outbox.entries.map((w) => w.key)).toEqual(['n1', 'n2'])
    await engine.unsubscribeInspector(sub)
    const count = pushed.length
    unwrap(await engine.set('notes', 'n3', { text: 'z' }))
    await new Promise((r) => setTimeout(r, 1_300))
    expect(pushed.length).toBe(count)
  })
})
