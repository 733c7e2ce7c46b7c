/**
 * Sync through a real relay with real `ws` clients: concurrent writes converge
 * field by field with the writer's HLC deciding (not arrival order); an offline client
 * catches up by Merkle delta (traffic proportional to what changed) and the relay pulls
 * the client's offline writes with `push`; an empty client gets a large slice in a
 * handful of frames; foreign stamps are refused unless the relay asked for them.
 */
import { Hlc, lwwView, type LwwRecordState, type ReplicaId } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { remove, update } from './helpers/changes'
import { LocalShape } from './helpers/replica'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relay(config = {}) {
  const started = await startRelay(config)
  cleanups.push(started.stop)
  return started.relay
}

async function connect(url: string, options = {}) {
  const { client, welcome } = await TestClient.connect(url, options)
  cleanups.push(() => client.close())
  return { client, welcome }
}

/** Waits until `client` has handled every frame sent so far (a ping round trip). */
async function barrier(client: TestClient): Promise<void> {
  const t = Math.random()
  client.send({ type: 'ping', clientTime: t })
  await client.waitAny((m) => m.type === 'pong' && m.clientTime === t)
}

describe('convergence', () => {
  it('keeps concurrent edits to different fields of one record, on both clients and the relay', async () => {
    const r = await relay()
    const { client: a } = await connect(r.url)
    const { client: b } = await connect(r.url)
    const la = new LocalShape({ map: 'todos' })
    const lb = new LocalShape({ map: 'todos' })
    await la.sync(a)
    await lb.sync(b)
    const ca = update(a.clock, 'todos', 't1', { title: 'buy milk' })
    const cb = update(b.clock, 'todos', 't1', { done: true })
    la.apply('t1', ca.state)
    lb.apply('t1', cb.state)
    // Both batches are in flight at once.
    const [acka, ackb] = await Promise.all([a.ops([ca]), b.ops([cb])])
    expect(acka.results).toEqual([null])
    expect(ackb.results).toEqual([null])
    await a.waitAny((m) => m.type === 'changes' && m.sub === la.sub)
    await b.waitAny((m) => m.type === 'changes' && m.sub === lb.sub)
    for (const m of a.all((m) => m.type === 'changes')) la.absorb(m as never)
    for (const m of b.all((m) => m.type === 'changes')) lb.absorb(m as never)
    expect(la.view('t1')).toEqual({ title: 'buy milk', done: true })
    expect(lb.view('t1')).toEqual({ title: 'buy milk', done: true })
    // Identical roots: a re-subscribe with the local root needs no transfer at all.
    expect(la.tree.root()).toEqual(lb.tree.root())
    const again = await la.sync(a)
    expect(again).toMatchObject({ received: 0, rounds: 0 })
  })

  it('lets the later HLC win a same-field conflict even when it arrives first', async () => {
    const r = await relay()
    const now = Date.now()
    const { client: a } = await connect(r.url, { now: () => now + 5_000 })
    const { client: b } = await connect(r.url, { now: () => now })
    const late = update(a.clock, 'todos', 't1', { title: 'from A (later clock)' })
    const early = update(b.clock, 'todos', 't1', { title: 'from B (earlier clock)' })
    await a.ops([late])
    // B's write arrives last but carries the older stamp: it must not win.
    expect((await b.ops([early])).results).toEqual([null])
    const { client: c } = await connect(r.url)
    const lc = new LocalShape({ map: 'todos' })
    await lc.sync(c)
    expect(lc.view('t1')).toEqual({ title: 'from A (later clock)' })
  })
})

describe('reconnect by Merkle delta', () => {
  it('catches up 20 changes of 5,000 records with traffic proportional to the change, and pushes offline writes', async () => {
    const r = await relay()
    const { client: writer } = await connect(r.url)
    const N = 5_000
    for (let i = 0; i < N; i += 1_000) {
      const batch = Array.from({ length: 1_000 }, (_, j) => update(writer.clock, 'items', `item-${i + j}`, { n: i + j, label: `label ${i + j}` }))
      expect((await writer.ops(batch)).results.every((x) => x === null)).toBe(true)
    }

    // An empty client gets the whole slice streamed in large frames.
    const replicaId = 'offline-device'
    const { client: first } = await TestClient.connect(r.url, { replicaId })
    const local = new LocalShape({ map: 'items' })
    const started = performance.now()
    const slice = await local.sync(first)
    const sliceMs = performance.now() - started
    expect(slice.received).toBe(N)
    expect(slice.frames).toBeLessThanOrEqual(5)
    console.log(`initial slice: ${N} records in ${slice.frames} frames, ${sliceMs.toFixed(0)} ms`)
    await first.close()

    // While it is offline: 20 records change on the relay, and it writes 5 new ones locally.
    const changed = Array.from({ length: 20 }, (_, i) => update(writer.clock, 'items', `item-${i * 250}`, { label: `edited ${i}` }))
    await writer.ops(changed)
    const offlineClock = new Hlc({ replicaId: replicaId as ReplicaId })
    for (let i = 0; i < 5; i++) local.apply(`offline-${i}`, update(offlineClock, 'items', `offline-${i}`, { n: -i }).state)

    const { client: back } = await connect(r.url, { replicaId })
    const delta = await local.sync(back)
    console.log(`reconnect: ${delta.received} records received, ${delta.pushed.length} pushed, ${delta.rounds} requests`)
    expect(delta.received).toBeGreaterThanOrEqual(20)
    expect(delta.received).toBeLessThan(200)
    // The relay asks for what it lacks, and for keys held differently (it cannot tell from a digest which side is newer).
    expect(delta.pushed.filter((k) => k.startsWith('offline-')).sort()).toEqual(['offline-0', 'offline-1', 'offline-2', 'offline-3', 'offline-4'])
    expect(delta.pushed.length).toBeLessThanOrEqual(25)
    expect(lwwView(local.states.get('item-250')!)).toEqual({ n: 250, label: 'edited 1' })

    // The relay now holds the offline writes: a fresh client sees all of them, and the roots agree.
    const { client: fresh } = await connect(r.url)
    const other = new LocalShape({ map: 'items' })
    await other.sync(fresh)
    expect(other.states.size).toBe(N + 5)
    expect(other.view('offline-3')).toEqual({ n: -3 })
    expect(other.tree.root()).toEqual(local.tree.root())
  })

  it('refuses another replica\u2019s stamps on every path, push answers included (no forgery through push)', async () => {
    const r1 = await startRelay()
    const { client: author } = await TestClient.connect(r1.relay.url)
    const change = update(author.clock, 'docs', 'd1', { body: 'written by author' })
    await author.ops([change])
    await author.close()
    await r1.stop()

    // A second relay that never saw d1 (think: restored from an old backup). A device that
    // is not d1's author holds a copy: the relay asks for it with push, and refuses it.
    const r = await relay()
    const { client: holder } = await connect(r.url)
    const forged = await holder.ops([{ ...change, key: 'd2' }])
    expect(forged.results[0]?.code).toBe('FORBIDDEN')
    const copy = new LocalShape({ map: 'docs' })
    copy.apply('d1', change.state)
    const report = await copy.sync(holder)
    expect(report.pushed).toEqual(['d1'])
    expect(report.pushResults).toEqual(['FORBIDDEN'])
    const { client: reader } = await connect(r.url)
    const before = new LocalShape({ map: 'docs' })
    await before.sync(reader)
    expect(before.states.has('d1')).toBe(false)

    // The author's own device uploads its write when asked: each replica restores its own writes.
    const { client: again } = await connect(r.url, { replicaId: author.replicaId })
    const own = new LocalShape({ map: 'docs' })
    own.apply('d1', change.state)
    expect((await own.sync(again)).pushResults).toEqual([null])
    const view = new LocalShape({ map: 'docs' })
    await view.sync(reader)
    expect(view.view('d1')).toEqual({ body: 'written by author' })
    expect(view.states.has('d2')).toBe(false)
  })

  it('refuses a foreign-stamped change for an existing key of another user after a made-up digest got a push', async () => {
    const r = await relay()
    const { client: owner } = await connect(r.url)
    const original = update(owner.clock, 'docs', 'mine', { body: 'owner text' })
    await owner.ops([original])
    // The attacker claims a different digest for "mine" so the relay pushes, then answers
    // with a newer register stamped with the owner's replica id.
    const { client: attacker } = await connect(r.url)
    const fake = new LocalShape({ map: 'docs' })
    const forgedClock = new Hlc({ replicaId: owner.replicaId as ReplicaId, now: () => Date.now() + 1_000 })
    fake.apply('mine', update(forgedClock, 'docs', 'mine', { body: 'forged' }).state as LwwRecordState)
    const report = await fake.sync(attacker)
    expect(report.pushResults.every((code) => code === 'FORBIDDEN')).toBe(true)
    const { client: reader } = await connect(r.url)
    const view = new LocalShape({ map: 'docs' })
    await view.sync(reader)
    expect(view.view('mine')).toEqual({ body: 'owner text' })
  })

  it('deletes propagate as tombstones and are collected after the horizon', async () => {
    const r = await relay({ tombstoneHorizonMs: 60_000 })
    const old = Date.now() - 120_000
    const { client: w } = await connect(r.url, { now: () => old })
    await w.ops([update(w.clock, 'todos', 'gone', { title: 'x' })])
    await w.ops([remove(w.clock, 'todos', 'gone')])
    await w.ops([update(new Hlc({ replicaId: w.replicaId as ReplicaId }), 'todos', 'kept', { title: 'y' })])
    const { client: reader } = await connect(r.url)
    const before = new LocalShape({ map: 'todos' })
    await before.sync(reader)
    expect(before.states.has('gone')).toBe(true)
    expect(before.view('gone')).toBeUndefined()
    expect(await r.gc()).toBe(1)
    const after = new LocalShape({ map: 'todos' })
    await after.sync(reader)
    expect([...after.states.keys()]).toEqual(['kept'])
    await barrier(reader)
  })

  it('tells a replica away longer than the horizon to re-sync from scratch', async () => {
    const r = await relay({ tombstoneHorizonMs: 60_000 })
    const { welcome: recent } = await connect(r.url, { lastSyncAt: Date.now() - 1_000 })
    const { welcome: stale } = await connect(r.url, { lastSyncAt: Date.now() - 120_000 })
    expect(recent.resync).toBe(false)
    expect(stale.resync).toBe(true)
    expect(stale.horizonMs).toBe(60_000)
  })
})

describe('counters and OR sets', () => {
  it('merges counters by per-replica totals, replays idempotently, and refuses forged totals', async () => {
    const { counterAddState, counterValue, emptyCounter, orAddState, orValues } = await import('@outpost/core')
    const r = await relay()
    const { client: a } = await connect(r.url)
    const { client: b } = await connect(r.url)
    const incA = counterAddState(emptyCounter(), a.replicaId as ReplicaId, 5)
    const incB = counterAddState(emptyCounter(), b.replicaId as ReplicaId, -2)
    const change = (state: typeof incA) => ({ kind: 'counter' as const, map: 'likes', key: '', state })
    expect((await a.ops([change(incA), change(incA)])).results).toEqual([null, null])
    expect((await b.ops([change(incB)])).results).toEqual([null])
    // B may not claim A's increments grew.
    const forged = counterAddState(incA, a.replicaId as ReplicaId, 100)
    expect((await b.ops([change(forged)])).results[0]?.code).toBe('FORBIDDEN')
    // A map holds one kind: an LWW write to the counter's map is refused per op.
    expect((await b.ops([update(b.clock, 'likes', 'x', { y: 1 })])).results[0]?.code).toBe('INVALID_VALUE')

    const { client: c } = await connect(r.url)
    c.send({ type: 'subscribe', sub: 1, shape: { map: 'likes' } })
    const got = await c.waitAny((m) => m.type === 'changes' && m.sub === 1)
    const state = got.type === 'changes' && got.changes[0]?.kind === 'counter' ? got.changes[0].state : emptyCounter()
    expect(counterValue(state)).toBe(3)

    const tag = a.clock.tick()
    expect((await a.ops([{ kind: 'or', map: 'tags', key: 'post-1', state: orAddState('urgent', tag) }])).results).toEqual([null])
    c.send({ type: 'subscribe', sub: 2, shape: { map: 'tags' } })
    const tags = await c.waitAny((m) => m.type === 'changes' && m.sub === 2)
    expect(tags.type === 'changes' && tags.changes[0]?.kind === 'or' ? orValues(tags.changes[0].state) : []).toEqual(['urgent'])
  })
})
