/**
 * What a tab's listeners are given, call by call, when it writes: the write is delivered
 * synchronously (before `set` returns), exactly once; the worker's rows and answer that
 * follow add no emission; a refused write is taken back with exactly one more; a listener
 * that writes in response leaves every listener on the latest rows and the engine with
 * the writes in the order they were made. The engine is the real one (see held-engine.ts).
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_WIRE_LIMITS, ValueTooLargeError } from '@outpost/core'
import type { Row } from '../src/index'
import { type HeldEngine, heldEngines, microtasks, record } from './held-engine'
import { until } from './helpers'

interface Item {
  title: string
}

const heldEngine = heldEngines()

const titles = (rows: readonly Row<Item>[] | undefined): string[] => (rows ?? []).map((row) => row.value.title)

/** Lets the engine finish what it is doing (its IndexedDB commit, its answers) without the test guessing how long. */
async function settledEngine(held: HeldEngine, writes: readonly PromiseLike<void>[]): Promise<void> {
  held.open()
  await Promise.all(writes)
  await new Promise((resolve) => setTimeout(resolve, 20))
  await microtasks()
}

describe('same-tab emission', () => {
  it('delivers a write to the live query and the live record before set() returns, and the confirmation adds nothing', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const rows = record(map.query({ orderBy: [['title', 'asc']] }))
    const one = record(map.record('a'))
    await until(() => rows.values.length === 1 && one.values.length === 1, 5000, 'the first values')

    held.hold()
    const handle = map.set('a', { title: 'alpha' })
    // Not a single microtask has run since set() was called.
    expect(rows.values.map(titles)).toEqual([[], ['alpha']])
    expect(one.values).toEqual([undefined, { title: 'alpha' }])

    await until(() => held.queued.includes('answer:set'), 5000, 'the engine to answer')
    await settledEngine(held, [handle])
    expect(rows.values.map(titles)).toEqual([[], ['alpha']])
    expect(one.values).toEqual([undefined, { title: 'alpha' }])
    rows.stop()
    one.stop()
  })

  it('a burst of writes emits once per write, in order, and the worker’s rows and answers that follow emit nothing', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const rows = record(map.query({ orderBy: [['title', 'asc']] }))
    await until(() => rows.values.length === 1, 5000, 'the first rows')

    held.hold()
    const writes = [map.set('b', { title: 'b' }), map.set('a', { title: 'a' }), map.update('b', { title: 'c' }), map.delete('a')]
    expect(rows.values.map(titles)).toEqual([[], ['b'], ['a', 'b'], ['a', 'c'], ['c']])
    await until(() => held.queued.filter((what) => what.startsWith('answer:')).length === 4, 5000, 'the engine to answer every write')
    // Delivered one message at a time, so every intermediate worker emission is seen.
    while (held.release(1).length > 0) await microtasks()
    await settledEngine(held, writes)
    expect(rows.values.map(titles)).toEqual([[], ['b'], ['a', 'b'], ['a', 'c'], ['c']])
    rows.stop()
  })

  it('a refused write is shown, then taken back with exactly one more emission', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    await map.set('keep', { title: 'kept' })
    const rows = record(map.query())
    const big = record(map.record('big'))
    await until(() => rows.values.length === 1 && big.values.length === 1, 5000, 'the first values')

    held.hold()
    const outcome = map.set('big', { title: 'x'.repeat(DEFAULT_WIRE_LIMITS.maxFrameBytes + 10) }).local.catch((error: unknown) => error)
    expect(rows.values.map((value) => value.map((row) => row.key))).toEqual([['keep'], ['big', 'keep']])
    held.open()
    expect(await outcome).toBeInstanceOf(ValueTooLargeError)
    await settledEngine(held, [])
    expect(rows.values.map((value) => value.map((row) => row.key))).toEqual([['keep'], ['big', 'keep'], ['keep']])
    expect(big.values.map((value) => value === undefined)).toEqual([true, false, true])
    rows.stop()
    big.stop()
  })

  it('a listener that writes in response leaves every listener on the latest rows, and the engine keeps the later write', async () => {
    const held = heldEngine()
    const { map } = held.tab<Item>('items')
    const live = map.query()
    const first: string[][] = []
    const second: string[][] = []
    const stopFirst = live.subscribe((rows) => {
      first.push(titles(rows))
      // Corrects the record as soon as it shows: a write made inside the delivery of another.
      if (rows[0]?.value.title === 'draft') void map.set('a', { title: 'final' })
    })
    const stopSecond = live.subscribe((rows) => second.push(titles(rows)))
    await until(() => first.length === 1 && second.length === 1, 5000, 'the first rows')

    held.hold()
    const write = map.set('a', { title: 'draft' })
    expect(first).toEqual([[], ['draft'], ['final']])
    // The second listener never sees 'draft' after 'final' (it may skip 'draft' altogether).
    expect(second.at(-1)).toEqual(['final'])
    expect(second).not.toContainEqual(['draft'])
    await settledEngine(held, [write])
    expect(await map.get('a')).toEqual({ title: 'final' })
    expect(first.at(-1)).toEqual(['final'])
    expect(second.at(-1)).toEqual(['final'])
    stopFirst()
    stopSecond()
  })
})
