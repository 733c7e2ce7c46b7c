/**
 * The same-tab optimistic overlay: a tab's own write shows in its live queries and records
 * before the worker round trip, the worker's rows replace it without flicker, a refused
 * write is taken back at once, and `limit` windows never show a row the tab cannot place.
 * The engine is the real one; `HeldEngine` only holds back what it sends to the tab.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_WIRE_LIMITS, QuotaExceededError, SchemaValidationError, ValueTooLargeError, type Store } from '@outpost/core'
import { z } from 'zod'
import type { Row } from '../src/index'
import { createLwwMap } from '../src/lww-map'
import { heldEngines, microtasks, record } from './held-engine'
import { until } from './helpers'

interface Item {
  title: string
  rank?: number
}

const heldEngine = heldEngines()

const titles = (rows: readonly Row<Item>[] | undefined): string[] => (rows ?? []).map((row) => row.value.title)
const keys = (rows: readonly Row<Item>[] | undefined): string[] => (rows ?? []).map((row) => row.key)

describe('same-tab overlay', () => {
  it('shows a write in the live query before the engine has delivered anything, and the worker’s rows replace it without a new emission', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const seen = record(map.query({ orderBy: [['title', 'asc']] }))
    await until(() => seen.values.length === 1, 5000, 'the first rows')

    held.hold()
    const handle = map.set('a', { title: 'alpha' })
    // Only microtasks ran: no message from the engine can have reached the tab.
    await microtasks()
    expect(seen.values.map(titles)).toEqual([[], ['alpha']])

    // The engine merged it, emitted, committed and answered; the tab still has none of it.
    await until(() => held.queued.includes('answer:set'), 5000, 'the engine to answer the write')
    expect(held.queued).toEqual(['callback:subscribeQuery', 'answer:set'])
    expect(seen.values).toHaveLength(2)

    held.release(1) // the worker's rows, which hold the write
    await microtasks()
    held.release() // the answer: the write leaves the overlay
    await handle
    await microtasks()
    expect(seen.values.map(titles)).toEqual([[], ['alpha']])
    seen.stop()
  })

  it('an older worker emission that does not hold the write yet does not make the row flicker back', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const other = held.tab<Item>('items', false).map // another tab: its writes reach this one through the worker
    const seen = record(map.query({ orderBy: [['title', 'asc']] }))
    await until(() => seen.values.length === 1, 5000, 'the first rows')

    held.hold()
    await other.set('x', { title: 'x-ray' })
    expect(held.queued).toEqual(['callback:subscribeQuery']) // the worker's rows [x-ray], made before this tab's write
    const handle = map.set('a', { title: 'alpha' })
    await microtasks()
    expect(titles(seen.values.at(-1))).toEqual(['alpha'])
    await until(() => held.queued.includes('answer:set'), 5000, 'the engine to answer the write')

    held.release(1) // [x-ray]: older than the write
    await microtasks()
    expect(titles(seen.values.at(-1))).toEqual(['alpha', 'x-ray'])
    held.open()
    await handle
    await microtasks()
    expect(seen.values.map(titles)).toEqual([[], ['alpha'], ['alpha', 'x-ray']])
    seen.stop()
  })

  it('a write the engine refuses (VALUE_TOO_LARGE) is taken back as soon as the refusal arrives', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const seen = record(map.query())
    await until(() => seen.values.length === 1, 5000, 'the first rows')
    await map.set('keep', { title: 'kept' })
    await microtasks()

    held.hold()
    const handle = map.set('big', { title: 'x'.repeat(DEFAULT_WIRE_LIMITS.maxFrameBytes + 10) })
    const outcome = handle.local.then(
      () => 'stored',
      (error: unknown) => error,
    )
    await microtasks()
    expect(keys(seen.values.at(-1))).toEqual(['big', 'keep'])
    await until(() => held.queued.includes('answer:set'), 5000, 'the refusal')
    expect(held.queued).toEqual(['answer:set']) // refused before anything changed in the worker: no emission
    held.release()
    expect(await outcome).toBeInstanceOf(ValueTooLargeError)
    await microtasks()
    expect(keys(seen.values.at(-1))).toEqual(['keep'])
    seen.stop()
  })

  it('a write whose commit fails (quota) is taken back, and the worker’s rollback agrees', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const seen = record(map.query())
    await until(() => seen.values.length === 1, 5000, 'the first rows')
    await map.set('a', { title: 'v1' })
    await until(() => titles(seen.values.at(-1))[0] === 'v1', 5000, 'v1')

    // fake-indexeddb cannot run out of quota, so the store refuses this one commit.
    const store = held.engine.store as Store
    const commit = store.commit.bind(store)
    store.commit = () => {
      store.commit = commit
      return Promise.reject(new QuotaExceededError('quota exceeded (injected)'))
    }
    held.hold()
    const handle = map.update('a', { title: 'v2' })
    const outcome = handle.local.then(
      () => 'stored',
      (error: unknown) => error,
    )
    await microtasks()
    expect(titles(seen.values.at(-1))).toEqual(['v2'])
    await until(() => held.queued.includes('answer:update'), 5000, 'the refusal')
    // The worker emitted v2 (its own optimistic memory), then v1 (its rollback), then refused.
    expect(held.queued).toEqual(['callback:subscribeQuery', 'callback:subscribeQuery', 'answer:update'])
    held.open()
    expect(await outcome).toBeInstanceOf(QuotaExceededError)
    await microtasks()
    expect(titles(seen.values.at(-1))).toEqual(['v1'])
    expect(await map.get('a')).toEqual({ title: 'v1' })
  })

  it('a write that fails validation is never shown', async () => {
    const held = heldEngine()
    const { session, pending } = held.tab<Item>('items')
    const schema = z.object({ title: z.string().min(1) })
    const map = createLwwMap<Item, Item>({ session, cache: new Map(), pending }, 'items', { schema, version: 1 })
    const seen = record(map.query())
    await until(() => seen.values.length === 1, 5000, 'the first rows')
    held.hold()
    const outcome = map.set('bad', { title: '' }).local.catch((error: unknown) => error)
    await microtasks()
    expect(await outcome).toBeInstanceOf(SchemaValidationError)
    expect(seen.values.map(keys)).toEqual([[]])
    // A valid write through the same schema shows at once (the validator answered synchronously).
    void map.set('good', { title: 'ok' })
    await microtasks()
    expect(seen.values.map(keys)).toEqual([[], ['good']])
    held.open()
  })

  it('keeps a limit window exact: places what it can, waits for the worker where a row it never received would move in', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    for (const [key, rank] of [['r1', 1], ['r2', 2], ['r3', 3], ['r4', 4], ['r5', 5]] as const) await map.set(key, { title: key, rank })
    const q = map.query({ orderBy: [['rank', 'asc']], limit: 3 })
    const seen = record(q)
    await until(() => seen.values.length === 1, 5000, 'the first rows')
    expect(keys(seen.values[0])).toEqual(['r1', 'r2', 'r3'])

    held.hold()
    const writes: PromiseLike<void>[] = []
    // A new row sorting first pushes the last one out: known here.
    writes.push(map.set('n', { title: 'n', rank: 0 }))
    await microtasks()
    expect(keys(seen.values.at(-1))).toEqual(['n', 'r1', 'r2'])
    // Deleting r1: r3 (pushed out just now, but known) moves back in.
    writes.push(map.delete('r1'))
    await microtasks()
    expect(keys(seen.values.at(-1))).toEqual(['n', 'r2', 'r3'])
    const count = seen.values.length
    // Deleting r2 would pull in r4, which this tab never received: the window waits for the worker.
    writes.push(map.delete('r2'))
    // An update of r5, which the tab does not hold: its other fields are in the worker only.
    writes.push(map.update('r5', { rank: -1 }))
    // Moving n past the window's last row: where it lands among unseen rows is the worker's to say.
    writes.push(map.update('n', { rank: 10 }))
    await microtasks()
    expect(seen.values).toHaveLength(count)

    held.open()
    await Promise.all(writes)
    await microtasks()
    expect(keys(seen.values.at(-1))).toEqual(['r5', 'r3', 'r4'])
    // Every window shown had exactly `limit` rows in order: never a gap, never a guess.
    for (const rows of seen.values) {
      expect(rows).toHaveLength(3)
      const ranks = rows.map((row) => row.value.rank as number)
      expect([...ranks].sort((x, y) => x - y)).toEqual(ranks)
    }
    seen.stop()
  })

  it('a newer window that cannot place a write already shown does not bring the row’s old value back', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const other = held.tab<Item>('items', false).map
    for (const [key, rank] of [['a', 1], ['b', 2], ['c', 6]] as const) await map.set(key, { title: key, rank })
    const seen = record(map.query({ orderBy: [['rank', 'asc']], limit: 3 }))
    await until(() => seen.values.length === 1, 5000, 'the first rows')

    held.hold()
    await other.set('z', { title: 'z', rank: 0 }) // the worker's next rows: [z, a, b(2)], c pushed out
    const write = map.set('b', { title: 'b', rank: 5 })
    await microtasks()
    expect(seen.values.at(-1)?.map((row) => [row.key, row.value.rank])).toEqual([['a', 1], ['b', 5], ['c', 6]])
    // [z, a, b(2)] cannot place b(5) (it sorts past its last row): shown as is, b would go back to 2.
    held.release(1)
    await microtasks()
    for (const rows of seen.values.slice(2)) expect(rows.find((row) => row.key === 'b')?.value.rank).not.toBe(2)
    held.open()
    await write
    await microtasks()
    expect(seen.values.at(-1)?.map((row) => [row.key, row.value.rank])).toEqual([['z', 0], ['a', 1], ['b', 5]])
    for (const rows of seen.values.slice(2)) expect(rows.find((row) => row.key === 'b')?.value.rank).not.toBe(2)
    seen.stop()
  })

  it('an update of a record the query holds is evaluated here, also when it stops matching', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item & { done?: boolean }>('items')
    await map.set('a', { title: 'a', done: false })
    await map.set('b', { title: 'b', done: false })
    const seen = record(map.query({ where: { eq: ['done', false] } }))
    await until(() => seen.values.length === 1, 5000, 'the first rows')
    held.hold()
    const done = map.update('a', { done: true })
    await microtasks()
    expect(keys(seen.values.at(-1))).toEqual(['b'])
    // The tab still knows a's whole record (from the update it just evaluated): undoing it shows here too.
    const undone = map.update('a', { done: false, title: 'a2' })
    await microtasks()
    expect(seen.values.at(-1)?.map((row) => row.value)).toEqual([
      { title: 'a2', done: false },
      { title: 'b', done: false },
    ])
    held.open()
    await Promise.all([done, undone])
    await microtasks()
    expect(seen.values.at(-1)?.map((row) => row.value)).toEqual([
      { title: 'a2', done: false },
      { title: 'b', done: false },
    ])
    seen.stop()
  })

  it('a live record shows set, update and delete before the engine answers', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const seen = record(map.record('k'))
    await until(() => seen.values.length === 1, 5000, 'the first value')
    held.hold()
    const writes = [map.update('k', { title: 'only this field' })]
    await microtasks()
    writes.push(map.update('k', { rank: 2 }))
    await microtasks()
    writes.push(map.delete('k'))
    await microtasks()
    writes.push(map.set('k', { title: 'again' }))
    await microtasks()
    expect(seen.values).toEqual([undefined, { title: 'only this field' }, { title: 'only this field', rank: 2 }, undefined, { title: 'again' }])
    held.open()
    await Promise.all(writes)
    await microtasks()
    expect(seen.values.at(-1)).toEqual({ title: 'again' })
    expect(await map.get('k')).toEqual({ title: 'again' })
    seen.stop()
  })

  it('other tabs are unaffected: they see the write only when the worker emits it', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items', false)
    const second = held.tab<Item>('items').map
    const seen = record(second.query())
    await until(() => seen.values.length === 1, 5000, 'the first rows')
    held.hold()
    await map.set('a', { title: 'from the first tab' })
    await microtasks()
    expect(seen.values.map(titles)).toEqual([[]])
    held.release()
    expect(seen.values.map(titles)).toEqual([[], ['from the first tab']])
    seen.stop()
  })
})
