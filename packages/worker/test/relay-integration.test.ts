/**
 * Engines (each its own fake IndexedDB, `ws` sockets) against the real relay
 * (@outpost/server-lite on 127.0.0.1:0, LMDB in a temp dir): convergence under
 * concurrent writes, disconnects and restarts; shapes with where + fields moving records
 * in and out; reconnect by Merkle delta; idempotent outbox replay after a restart.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import type { Row } from '../src/engine-api'
import { engineOn, freshIdb, prng, tempDir, testSeed, unwrap, waitFor } from './helpers'
import type { IDBFactory } from 'fake-indexeddb'
import { IdbStore } from '../src/store/idb-store'
import { OUTBOX_COLLECTION } from '../src/outbox'

let relay: Relay
let removeDir: () => void
const engines = new Set<Engine>()

beforeEach(async () => {
  const dir = tempDir()
  removeDir = dir.remove
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
})

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  await relay.close()
  removeDir()
})

function start(idb: IDBFactory, options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(idb, { url: relay.url, ...options })
  engines.add(engine)
  return engine
}

async function restart(engine: Engine, idb: IDBFactory): Promise<Engine> {
  await engine.close()
  engines.delete(engine)
  return start(idb)
}

async function live(engine: Engine): Promise<void> {
  unwrap(await engine.ready())
  await waitFor('live', async () => (await engine.status()).connection === 'live')
}

/** Every visible record of `map`, through a live query (what an app would render). */
async function snapshot(engine: Engine, map: string): Promise<Map<string, unknown>> {
  let rows: readonly Row[] = []
  const id = unwrap(await engine.subscribeQuery({ map }, (r) => (rows = r)))
  await engine.unsubscribeQuery(id)
  return new Map(rows.map((r) => [r.key, r.value]))
}

describe('engines against the real relay', () => {
  it('converge under concurrent writes, disconnects and restarts', async () => {
    const seed = testSeed('converge')
    const random = prng(seed)
    const idbs = [freshIdb(), freshIdb(), freshIdb()]
    let replicas = idbs.map((idb) => start(idb))
    for (const e of replicas) unwrap(await e.subscribeShape({ map: 'todos' }))
    await Promise.all(replicas.map(live))
    for (let round = 0; round < 6; round++) {
      const writes: Promise<unknown>[] = []
      for (let i = 0; i < 30; i++) {
        const who = Math.floor(random() * replicas.length)
        const e = replicas[who] as Engine
        const key = `k${Math.floor(random() * 40)}`
        const r = random()
        if (r < 0.5) writes.push(e.set('todos', key, { title: `t${round}-${i}`, by: who }))
        else if (r < 0.85) writes.push(e.update('todos', key, { [`f${Math.floor(random() * 3)}`]: round * 100 + i }))
        else writes.push(e.delete('todos', key))
      }
      await Promise.all(writes)
      // Disconnect one replica for a while, restart another.
      const off = replicas[round % 3] as Engine
      await off.setOffline(true)
      unwrap(await off.set('todos', `offline-${round}`, { round }))
      if (round % 2 === 1) {
        const which = (round + 1) % 3
        replicas[which] = await restart(replicas[which] as Engine, idbs[which] as IDBFactory)
      }
      await off.setOffline(false)
    }
    await Promise.all(replicas.map(live))
    await waitFor(
      'every outbox drained',
      async () => (await Promise.all(replicas.map((e) => e.status()))).every((s) => s.pendingWrites === 0),
      30_000,
    )
    // Fan-out of the last acked writes may still be in flight: wait (bounded) for agreement.
    const agree = async (): Promise<boolean> => {
      const s = await Promise.all(replicas.map((e) => snapshot(e, 'todos')))
      return JSON.stringify([...(s[0] ?? [])].sort()) === JSON.stringify([...(s[1] ?? [])].sort()) && JSON.stringify([...(s[0] ?? [])].sort()) === JSON.stringify([...(s[2] ?? [])].sort())
    }
    await waitFor('replicas agree', agree, 10_000).catch(() => undefined)
    const snaps = await Promise.all(replicas.map((e) => snapshot(e, 'todos')))
    try {
      expect(snaps[1]).toEqual(snaps[0])
      expect(snaps[2]).toEqual(snaps[0])
      expect(snaps[0]?.size).toBeGreaterThan(0)
    } catch (error) {
      console.log(`[converge] failed with seed=${seed}`)
      throw error
    }
  })

  it('a shape with where + fields receives move-ins and move-outs', async () => {
    const writer = start(freshIdb())
    unwrap(await writer.subscribeShape({ map: 'tasks' }))
    await live(writer)
    for (let i = 0; i < 10; i++) unwrap(await writer.set('tasks', `t${i}`, { title: `task ${i}`, owner: i < 4 ? 'me' : 'other', secret: 's' }))
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0)

    const reader = start(freshIdb())
    unwrap(await reader.subscribeShape({ map: 'tasks', where: { eq: ['owner', 'me'] }, fields: ['title'] }))
    await live(reader)
    await waitFor('initial slice', async () => (await snapshot(reader, 'tasks')).size === 4)
    expect(unwrap(await reader.get('tasks', 't0'))).toEqual({ title: 'task 0' })

    // Move-out: t1 stops matching. Move-in: t7 starts matching.
    unwrap(await writer.update('tasks', 't1', { owner: 'other' }))
    unwrap(await writer.update('tasks', 't7', { owner: 'me' }))
    await waitFor('move-out and move-in', async () => {
      const snap = await snapshot(reader, 'tasks')
      return !snap.has('t1') && snap.has('t7') && snap.size === 4
    })
    expect(unwrap(await reader.get('tasks', 't7'))).toEqual({ title: 'task 7' })
    // The move-out deleted nothing for anyone.
    expect(unwrap(await writer.get('tasks', 't1'))).toMatchObject({ title: 'task 1', owner: 'other' })
  })

  it('reconnects by Merkle delta: traffic follows the changes, not the map size', async () => {
    const writer = start(freshIdb())
    unwrap(await writer.subscribeShape({ map: 'docs' }))
    await live(writer)
    const N = 10_000
    const results = await Promise.all(Array.from({ length: N }, (_, i) => writer.set('docs', `d${i}`, { body: `document ${i}`.padEnd(150, '.') })))
    expect(results.every((r) => r.ok)).toBe(true)
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0, 30_000)

    const reader = start(freshIdb())
    const started = performance.now()
    unwrap(await reader.subscribeShape({ map: 'docs' }))
    await live(reader)
    await waitFor('initial sync', () => reader.receivedRecords >= N, 30_000)
    await reader.flush()
    const ms = performance.now() - started
    console.log(`[figure] initial sync of ${N} records (~200 B) from the relay, durable in IndexedDB: ${ms.toFixed(0)} ms (${((N / ms) * 1000).toFixed(0)} records/s, fake-indexeddb, Node)`)

    await reader.setOffline(true)
    for (let i = 0; i < 10; i++) unwrap(await writer.update('docs', `d${i * 97}`, { body: `changed ${i}` }))
    await waitFor('changes acked', async () => (await writer.status()).pendingWrites === 0)
    const before = reader.receivedRecords
    const framesBefore = reader.syncStats.framesSent
    await reader.setOffline(false)
    await live(reader)
    await waitFor('the 10 changes', async () => unwrap(await reader.get('docs', `d${9 * 97}`))?.['body'] === 'changed 9')
    const transferred = reader.receivedRecords - before
    const frames = reader.syncStats.framesSent - framesBefore
    console.log(`[figure] reconnect after 10 of ${N} changed: ${transferred} records received, ${frames} frames sent`)
    expect(transferred).toBeGreaterThanOrEqual(10)
    expect(transferred).toBeLessThan(100)
    expect(frames).toBeLessThan(100)
  })

  it('replays the outbox idempotently after a restart (counters do not double)', async () => {
    const idbA = freshIdb()
    let a = start(idbA, { startOffline: true })
    unwrap(await a.subscribeShape({ map: 'hits' }))
    unwrap(await a.counterAdd('hits', 5))
    unwrap(await a.set('notes', 'n1', { text: 'written offline' }))
    await a.close()
    engines.delete(a)
    // Keep a copy of the outbox as it was before the relay saw it.
    let store = await IdbStore.open('outpost:test', { indexedDB: idbA })
    const saved = await store.scan(OUTBOX_COLLECTION)
    await store.close()
    expect(saved).toHaveLength(2)

    a = start(idbA)
    expect(unwrap(await a.ready()).pendingWrites).toBe(2)
    await live(a)
    await waitFor('replayed and acked', async () => (await a.status()).pendingWrites === 0)
    await a.close()
    engines.delete(a)

    // A crash between the relay's commit and the local ack: the same ops are pending again.
    store = await IdbStore.open('outpost:test', { indexedDB: idbA })
    await store.commit({ puts: saved })
    await store.close()
    a = start(idbA)
    expect(unwrap(await a.ready()).pendingWrites).toBe(2)
    await live(a)
    await waitFor('replayed again and acked', async () => (await a.status()).pendingWrites === 0)

    const b = start(freshIdb())
    unwrap(await b.subscribeShape({ map: 'hits' }))
    unwrap(await b.subscribeShape({ map: 'notes' }))
    await live(b)
    let value: unknown
    unwrap(await b.subscribeValue('counter', 'hits', '', (v) => (value = v)))
    await waitFor('counter synced', () => value === 5)
    await new Promise((r) => setTimeout(r, 200))
    expect(value).toBe(5)
    expect(unwrap(await b.get('notes', 'n1'))).toEqual({ text: 'written offline' })
    let valueA: unknown
    unwrap(await a.subscribeValue('counter', 'hits', '', (v) => (valueA = v)))
    expect(valueA).toBe(5)
  })

  it('re-syncs a shape from scratch past the tombstone horizon, so nothing deleted reappears', async () => {
    await relay.close()
    const dir = tempDir()
    const previousRemove = removeDir
    removeDir = () => {
      previousRemove()
      dir.remove()
    }
    relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', tombstoneHorizonMs: 300 })
    const a = start(freshIdb())
    const b = start(freshIdb())
    for (const e of [a, b]) unwrap(await e.subscribeShape({ map: 'items' }))
    await Promise.all([live(a), live(b)])
    unwrap(await b.set('items', 'i1', { v: 1 }))
    unwrap(await b.set('items', 'i2', { v: 2 }))
    await waitFor('A has both', async () => (await snapshot(a, 'items')).size === 2)
    await a.setOffline(true)
    unwrap(await b.delete('items', 'i1'))
    await waitFor('delete acked', async () => (await b.status()).pendingWrites === 0)
    await new Promise((r) => setTimeout(r, 400))
    expect(await relay.gc()).toBeGreaterThanOrEqual(1)
    await a.setOffline(false)
    await live(a)
    await waitFor('A re-synced without i1', async () => {
      const snap = await snapshot(a, 'items')
      return snap.size === 1 && snap.has('i2')
    })
    await new Promise((r) => setTimeout(r, 200))
    expect([...(await snapshot(b, 'items')).keys()]).toEqual(['i2'])
  })
})

describe('network return', () => {
  it('a connection backing off retries as soon as the network is back, not after its delay', async () => {
    const port = relay.port
    await relay.close()
    const network = new EventTarget()
    // A backoff of 30-60 s: without the `online` event the engine would sit it out.
    const engine = start(freshIdb(), { backoff: { baseMs: 60_000, capMs: 60_000 }, networkEvents: network })
    unwrap(await engine.ready())
    await waitFor('backing off', async () => (await engine.status()).connection === 'backing-off')
    const dir = tempDir()
    const previousRemove = removeDir
    removeDir = () => {
      previousRemove()
      dir.remove()
    }
    relay = await createRelay({ port, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
    network.dispatchEvent(new Event('online'))
    // Well inside the 30-60 s the backoff would otherwise wait.
    await waitFor('live after the network returned', async () => (await engine.status()).connection === 'live', 10_000)
  })
})
