/**
 * Coordination primitives between engines through the real relay (@outpost/server-lite
 * on 127.0.0.1:0, LMDB in a temp dir, `ws` sockets, fake-indexeddb): topics between
 * browsers (in order, re-subscribed after a reconnect, rules enforced), lock leases with
 * fencing tokens (FIFO hand-over, extend, loss on expiry and on disconnect), entry
 * processors (result, synced write, typed errors), and counters that converge to the
 * exact sum after concurrent offline increments and a duplicated outbox replay.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Value } from '@outpost/core'
import type { Engine } from '../src/engine'
import type { LeaseLostReason, TopicEvent } from '../src/engine-api'
import { IdbStore } from '../src/store/idb-store'
import { OUTBOX_COLLECTION } from '../src/outbox'
import { engineOn, freshIdb, prng, tempDir, testSeed, unwrap, waitFor } from './helpers'
import type { IDBFactory } from 'fake-indexeddb'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

type RelayConfig = Parameters<typeof createRelay>[0]
type RelayOptions = Parameters<typeof createRelay>[1]

const processors = {
  /** Takes `by` from a stock count; refuses to go below zero. */
  decrement: ({ value, args }: { value: Record<string, unknown> | undefined; args: unknown }) => {
    const by = (args as { by?: number } | null)?.by ?? 1
    const count = typeof value?.['count'] === 'number' ? value['count'] : 0
    if (count - by < 0) throw new Error(`only ${count} left`)
    return { value: { ...value, count: count - by }, result: count - by }
  },
}

async function relayWith(config: Partial<RelayConfig> = {}, options?: RelayOptions): Promise<Relay> {
  const dir = tempDir()
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', ...config }, options)
  cleanups.push(() => dir.remove())
  cleanups.push(() => relay.close())
  return relay
}

function start(relay: Relay, idb: IDBFactory = freshIdb(), options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(idb, { url: relay.url, ...options })
  cleanups.push(() => engine.close())
  return engine
}

async function live(engine: Engine): Promise<void> {
  unwrap(await engine.ready())
  await waitFor('live', async () => (await engine.status()).connection === 'live')
}

function collect(engine: Engine, topic: string, client = 'tab'): { events: TopicEvent[]; ready: Promise<number> } {
  const events: TopicEvent[] = []
  const ready = engine.subscribeTopic(topic, client, (ev) => void events.push(ev)).then(unwrap)
  return { events, ready }
}

describe('topics through the relay', () => {
  it('reach another browser in publish order, and again after it reconnects', async () => {
    const relay = await relayWith()
    const a = start(relay)
    const b = start(relay)
    await Promise.all([live(a), live(b)])
    const got = collect(b, 'room:42')
    await got.ready
    // The relay learns the subscription asynchronously: wait until a publish reaches it.
    await waitFor('b subscribed on the relay', async () => unwrap(await a.publishTopic('room:42', 'x', 'probe')).delivered === 1)
    got.events.length = 0

    const receipts = []
    for (let i = 0; i < 30; i++) receipts.push(unwrap(await a.publishTopic('room:42', 'tab-a', { i })))
    expect(receipts.every((r) => r.remote === 'delivered' && r.delivered === 1 && r.local === 0)).toBe(true)
    await waitFor('30 messages at b', () => got.events.length === 30)
    expect(got.events.map((ev) => (ev.type === 'message' ? (ev.data as { i: number }).i : -1))).toEqual([...Array(30).keys()])
    expect(got.events[0]).toMatchObject({ type: 'message', local: false, from: a.replicaId })

    await b.setOffline(true)
    await waitFor('the relay to see b leave', () => relay.sessionCount === 1)
    expect(unwrap(await a.publishTopic('room:42', 'tab-a', 'nobody hears this')).delivered).toBe(0)
    await b.setOffline(false)
    await live(b)
    await waitFor('b re-subscribed after reconnect', async () => unwrap(await a.publishTopic('room:42', 'tab-a', 'back')).delivered === 1)
    expect(got.events.some((ev) => ev.type === 'message' && ev.data === 'back')).toBe(true)
    expect(got.events.some((ev) => ev.type === 'message' && ev.data === 'nobody hears this')).toBe(false)
  })

  it('the relay rules refuse a topic: publish rejects FORBIDDEN, a subscription gets an error event, the session stays up', async () => {
    const relay = await relayWith({ rules: { maps: {}, topics: { 'room:*': { publish: 'public', subscribe: 'public' } } } })
    const a = start(relay)
    const b = start(relay)
    await Promise.all([live(a), live(b)])
    const denied = await a.publishTopic('secret:1', 'tab', 'psst')
    expect(denied.ok).toBe(false)
    if (!denied.ok) expect(denied.error.code).toBe('FORBIDDEN')

    const secret = collect(b, 'secret:1')
    await secret.ready
    await waitFor('refusal', () => secret.events.length === 1)
    expect(secret.events[0]).toMatchObject({ type: 'error', topic: 'secret:1', error: { code: 'FORBIDDEN' } })
    expect((await b.status()).connection).toBe('live')

    const room = collect(b, 'room:1')
    await room.ready
    await waitFor('allowed topic works', async () => unwrap(await a.publishTopic('room:1', 'tab', 'hi')).delivered === 1)
  })
})

describe('locks through the relay', () => {
  it('hand over in FIFO order with increasing fencing tokens; extend, check, release', async () => {
    const relay = await relayWith()
    const a = start(relay)
    const b = start(relay)
    await Promise.all([live(a), live(b)])
    const lostA: LeaseLostReason[] = []
    const leaseA = unwrap(await a.acquireLock('invoice:9', 10_000, 0, (r) => void lostA.push(r)))
    expect(leaseA.token).toBeGreaterThan(0)

    const busy = await b.acquireLock('invoice:9', 10_000, 0, () => {})
    expect(!busy.ok && busy.error.code).toBe('LOCK_FAILED')

    const waiting = b.acquireLock('invoice:9', 10_000, 5_000, () => {})
    const extended = unwrap(await a.extendLock(leaseA.id, 20_000))
    expect(extended.expiresAt).toBeGreaterThan(leaseA.expiresAt)
    unwrap(await a.releaseLock(leaseA.id))
    const leaseB = unwrap(await waiting)
    expect(leaseB.token).toBeGreaterThan(leaseA.token)

    expect(unwrap(await a.checkLock('invoice:9', leaseA.token))).toEqual({ valid: false, current: leaseB.token })
    expect(unwrap(await a.checkLock('invoice:9', leaseB.token))).toEqual({ valid: true, current: leaseB.token })
    expect(lostA).toEqual([])
    const again = await a.extendLock(leaseA.id, 1_000)
    expect(!again.ok && again.error.code).toBe('LOCK_FAILED')
  })

  it('a lease is lost when its TTL runs out without extend, and when the connection drops', async () => {
    const relay = await relayWith()
    const a = start(relay)
    const b = start(relay)
    await Promise.all([live(a), live(b)])
    const lost: LeaseLostReason[] = []
    const started = Date.now()
    unwrap(await a.acquireLock('short', 300, 0, (r) => void lost.push(r)))
    await waitFor('expiry', () => lost.length === 1, 5_000)
    expect(lost).toEqual(['expired'])
    expect(Date.now() - started).toBeLessThan(3_000)
    // Expired on the relay too: someone else gets it.
    unwrap(await b.acquireLock('short', 10_000, 2_000, () => {}))

    const dropped: LeaseLostReason[] = []
    const held = unwrap(await a.acquireLock('held', 2_000, 0, (r) => void dropped.push(r)))
    await a.setOffline(true)
    await waitFor('loss on disconnect', () => dropped.length === 1)
    expect(dropped).toEqual(['disconnected'])
    // The relay still honours the lease until its TTL: nobody gets it early.
    const early = await b.acquireLock('held', 10_000, 0, () => {})
    expect(!early.ok && early.error.code).toBe('LOCK_FAILED')
    const later = unwrap(await b.acquireLock('held', 10_000, 5_000, () => {}))
    expect(later.token).toBeGreaterThan(held.token)
  })
})

describe('entry processors through the relay', () => {
  it('return the result, sync the write to another browser, and fail with typed errors', async () => {
    const relay = await relayWith({}, { functions: { processors } } as RelayOptions)
    const a = start(relay)
    const b = start(relay)
    await Promise.all([live(a), live(b)])
    unwrap(await b.subscribeShape({ map: 'stock' }))
    unwrap(await a.set('stock', 'sku1', { name: 'Widget', count: 3 }))
    await waitFor('a persisted', async () => (await a.status()).pendingWrites === 0)

    expect(unwrap(await b.invoke('stock', 'sku1', 'decrement', { by: 2 }))).toBe(1)
    await waitFor('b sees the processor write', async () => unwrap(await b.get('stock', 'sku1'))?.['count'] === 1)
    unwrap(await a.subscribeShape({ map: 'stock' }))
    await waitFor('a sees it too', async () => unwrap(await a.get('stock', 'sku1'))?.['count'] === 1)
    expect(unwrap(await a.get('stock', 'sku1'))).toEqual({ name: 'Widget', count: 1 })

    const refused = await a.invoke('stock', 'sku1', 'decrement', { by: 5 })
    expect(!refused.ok && refused.error.code).toBe('PROCESSOR_FAILED')
    if (!refused.ok) expect(refused.error.message).toContain('only 1 left')
    const unknown = await a.invoke('stock', 'sku1', 'nope', null)
    expect(!unknown.ok && unknown.error.code).toBe('NOT_FOUND')
  })
})

describe('counters through the relay', () => {
  it('offline increments on several browsers converge to the exact sum, also after a duplicated outbox replay', async () => {
    const seed = testSeed('counters')
    const random = prng(seed)
    const relay = await relayWith()
    const idbs = [freshIdb(), freshIdb(), freshIdb()]
    let engines = idbs.map((idb) => start(relay, idb, { startOffline: true }))
    let expected = 0
    for (const e of engines) unwrap(await e.ready())
    for (let round = 0; round < 20; round++) {
      const e = engines[Math.floor(random() * engines.length)] as Engine
      const delta = Math.floor(random() * 9) - 3 || 1
      expected += delta
      unwrap(await e.counterAdd('likes', delta))
    }
    // What engine 0 would replay: its outbox before anything was acknowledged.
    await engines[0]?.flush()
    const replay = await (engines[0]?.store as IdbStore).scan(OUTBOX_COLLECTION)
    expect(replay.length).toBeGreaterThan(0)

    const value = async (e: Engine): Promise<Value> => {
      let v: Value = null
      const id = unwrap(await e.subscribeValue('counter', 'likes', '', (x) => (v = x)))
      await e.unsubscribeQuery(id)
      return v
    }
    await Promise.all(engines.map((e) => e.setOffline(false)))
    for (const e of engines) await waitFor(`sum ${expected} (seed ${seed})`, async () => (await value(e)) === expected && (await e.status()).pendingWrites === 0)

    // Put engine 0's already-acknowledged outbox back and restart it: it replays every entry.
    const first = engines[0] as Engine
    await first.close()
    const store = await IdbStore.open('outpost:test', { indexedDB: idbs[0] as IDBFactory })
    await store.commit({ puts: replay.map((entry) => ({ collection: OUTBOX_COLLECTION, key: entry.key, value: entry.value })) })
    await store.close()
    const restarted = start(relay, idbs[0], { startOffline: true })
    unwrap(await restarted.ready())
    expect((await restarted.status()).pendingWrites).toBe(replay.length)
    await restarted.setOffline(false)
    await live(restarted)
    await waitFor('replay acknowledged', async () => (await restarted.status()).pendingWrites === 0)
    engines = [restarted, ...engines.slice(1)]
    const fresh = start(relay)
    await live(fresh)
    for (const e of [...engines, fresh]) await waitFor(`still ${expected} after the replay (seed ${seed})`, async () => (await value(e)) === expected)
  })
})
