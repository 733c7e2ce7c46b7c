/**
 * A cold start's first query is answered from the map's stored pages, before (and without)
 * decoding the map into memory (fake IndexedDB, seeded random data):
 * - what a page entry looks like to the app (`forEachViewInPage`) is exactly `lwwView` of
 *   the decoded state: tombstones, revived fields and `__proto__`-like names included;
 * - a query answered from the pages gives exactly the rows the same query gives once the
 *   map is in memory, and leaves the map undecoded; the map's load then reads no page again;
 * - a write made while the first query reads the pages is not lost: the live query shows it;
 * - start-up reads its meta values in one transaction (`getMetaMany`).
 */
import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import { afterEach, describe, expect, it } from 'vitest'
import { lwwDeleteState, lwwSetState, lwwUpdateState, lwwView, mergeLww, type LwwRecordState, type Query, type RecordValue, type Stamp, type Value } from '@outpost/core'
import type { Engine } from '../src/engine'
import type { Row } from '../src/engine-api'
import { IdbStore } from '../src/store/idb-store'
import { encodePage, forEachInPage, forEachViewInPage } from '../src/store/page-codec'
import { engineOn, prng, testSeed, unwrap } from './helpers'

const engines = new Set<Engine>()

afterEach(async () => {
  for (const engine of engines) await engine.close()
  engines.clear()
})

function start(idb: IDBFactory, options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(idb, options)
  engines.add(engine)
  return engine
}

const NAMES = ['group', 'title', 'score', 'tags', '__proto__', 'constructor', '']

/** A random record over a few of {@link NAMES}, with values of every kind. */
function randomRecord(random: () => number): RecordValue {
  const record: Record<string, Value> = {}
  for (const name of NAMES) {
    if (random() < 0.4) continue
    const pick = random()
    const value: Value = pick < 0.4 ? Math.floor(random() * 5) : pick < 0.6 ? `t${Math.floor(random() * 50)}` : pick < 0.7 ? null : pick < 0.8 ? [1, 'a', Math.floor(random() * 3)] : pick < 0.9 ? { nested: Math.floor(random() * 3) } : random() < 0.5
    Object.defineProperty(record, name, { value, enumerable: true, writable: true, configurable: true })
  }
  return record
}

/** Seeded random writes to map `items`: sets, updates (reviving deleted records with some fields), deletes. */
async function writeRandom(engine: Engine, random: () => number, keys: number, writes: number): Promise<void> {
  // A batch at a time: the committer groups concurrent writes into one transaction.
  for (let i = 0; i < writes; i += 100) {
    const batch: Promise<unknown>[] = []
    for (let j = i; j < Math.min(writes, i + 100); j++) {
      const key = `k${Math.floor(random() * keys)}`
      const pick = random()
      if (pick < 0.6) batch.push(engine.set('items', key, randomRecord(random)).then(unwrap))
      else if (pick < 0.85) batch.push(engine.update('items', key, randomRecord(random)).then(unwrap))
      else batch.push(engine.delete('items', key).then(unwrap))
    }
    await Promise.all(batch)
  }
}

const QUERIES: Query[] = [
  {},
  { where: { eq: ['group', 3] }, limit: 20 },
  { orderBy: [['score', 'desc']], limit: 15 },
  { where: { and: [{ exists: 'title' }, { ne: ['group', 1] }] }, orderBy: [['title', 'asc'], ['group', 'desc']] },
  { where: { or: [{ eq: ['__proto__', 2] }, { eq: ['', null] }] }, orderBy: [['constructor', 'asc']], limit: 40 },
  { where: { not: { exists: 'group' } } },
]

/** The rows `engine` gives `query` over `items` at once, on subscribing. */
async function firstRows(engine: Engine, query: Query): Promise<readonly Row[]> {
  let first: readonly Row[] | undefined
  const id = unwrap(await engine.subscribeQuery({ map: 'items', ...query }, (rows) => (first ??= rows)))
  await engine.unsubscribeQuery(id)
  if (first === undefined) throw new Error('no rows on subscribing')
  return first
}

async function isLoaded(engine: Engine): Promise<boolean> {
  return unwrap(await engine.inspect()).maps.entries.some((m) => m.map === 'items' && m.kind === 'lww' && m.loaded)
}

describe('page views', () => {
  it('are exactly lwwView of the decoded state (seeded random states)', () => {
    const seed = testSeed('page views')
    const random = prng(seed)
    const stamp = (n: number): Stamp => `${String(1_700_000_000_000 + n).padStart(13, '0')}-0000-r${n % 3}` as Stamp
    for (let round = 0; round < 20; round++) {
      const entries: [string, Value][] = []
      for (let i = 0; i < 40; i++) {
        let state: LwwRecordState = lwwSetState(randomRecord(random), stamp(10 * i), stamp(10 * i + 1))
        for (let j = 0; j < 3; j++) {
          const at = Math.floor(random() * 2000)
          const pick = random()
          state = mergeLww(state, pick < 0.3 ? lwwDeleteState(stamp(at)) : pick < 0.6 ? lwwUpdateState(randomRecord(random), stamp(at)) : lwwSetState(randomRecord(random), stamp(at), stamp(at + 1)))
        }
        entries.push([`k${i}`, state as unknown as Value])
      }
      // Values that are not compact LWW records are kept as they are: the view still reads them.
      entries.push(['raw', { fields: [['a', 1, stamp(5)]], deleted: null, extra: true } as unknown as Value])
      const page = structuredClone(encodePage(entries))
      const expected = new Map<string, RecordValue | undefined>()
      forEachInPage(page, (key, value) => expected.set(key, lwwView(value as unknown as LwwRecordState)))
      const seen = new Map<string, RecordValue | undefined>()
      forEachViewInPage(page, (key, view) => seen.set(key, view))
      expect(seen, `seed ${seed}, round ${round}`).toEqual(expected)
      for (const [key, view] of seen) if (view !== undefined) expect(Object.keys(view), `seed ${seed}: own keys of ${key}`).toEqual(Object.keys(expected.get(key) as object))
    }
  })
})

describe('cold start', () => {
  it('reads its meta values in one go, in order, missing ones undefined', async () => {
    const store = await IdbStore.open('meta-many', { indexedDB: new IDBFactory() })
    await store.commit({ meta: [{ key: 'a', value: 1 }, { key: 'c', value: { x: [2] } }] })
    expect(await store.getMetaMany(['c', 'b', 'a'])).toEqual([{ x: [2] }, undefined, 1])
    await store.close()
  })

  it('answers the first queries from the pages, exactly as the loaded map does, reading each page once', async () => {
    const seed = testSeed('cold start from pages')
    const random = prng(seed)
    const idb = new IDBFactory()
    const writer = start(idb)
    await writeRandom(writer, random, 700, 1_200)
    engines.delete(writer)
    await writer.close()

    const cold = start(idb, { startOffline: true })
    unwrap(await cold.ready())
    const store = cold.store as IdbStore
    const before = store.stats.pagesRead
    const fromPages: (readonly Row[])[] = []
    for (const query of QUERIES) fromPages.push(await firstRows(cold, query))
    expect(await isLoaded(cold), 'the first queries leave the map undecoded').toBe(false)
    const pages = store.stats.pagesRead - before
    expect(pages, 'several pages').toBeGreaterThan(1)

    // Loading the map (a read of one record does) decodes the pages already read.
    unwrap(await cold.get('items', 'k1'))
    expect(await isLoaded(cold)).toBe(true)
    expect(store.stats.pagesRead - before, 'the map loads from the pages the queries read').toBe(pages)
    for (const [i, query] of QUERIES.entries()) expect(await firstRows(cold, query), `seed ${seed}, query ${JSON.stringify(query)}`).toEqual(fromPages[i])
  }, 60_000)

  for (const order of ['query answered, then writes', 'query first', 'write first'] as const) {
    it(`loses no write made while the first query reads the pages (${order})`, async () => {
      const seed = testSeed(`cold start write during load, ${order}`)
      const random = prng(seed)
      const idb = new IDBFactory()
      const writer = start(idb)
      await writeRandom(writer, random, 600, 700)
      unwrap(await writer.set('items', 'gone', { group: 3, title: 'a' }))
      unwrap(await writer.set('items', 'moved', { group: 3, title: 'b' }))
      engines.delete(writer)
      await writer.close()

      const cold = start(idb, { startOffline: true })
      unwrap(await cold.ready())
      const query: Query = { where: { eq: ['group', 3] }, orderBy: [['title', 'asc']] }
      let latest: readonly Row[] = []
      const writes = async (): Promise<void> => {
        await Promise.all([
          cold.set('items', 'new', { group: 3, title: 'c' }).then(unwrap),
          cold.delete('items', 'gone').then(unwrap),
          cold.update('items', 'moved', { group: 4 }).then(unwrap),
        ])
      }
      const subscribe = cold.subscribeQuery({ map: 'items', ...query }, (rows) => (latest = rows)).then(unwrap)
      if (order === 'query answered, then writes') {
        await subscribe
        expect(await isLoaded(cold), 'answered from the pages').toBe(false)
        await writes()
      } else if (order === 'query first') await Promise.all([subscribe, writes()])
      else await Promise.all([writes(), subscribe])
      // Notifications go out once per microtask.
      await new Promise((resolve) => setTimeout(resolve, 10))
      const keys = latest.map((row) => row.key)
      expect(keys, `seed ${seed}`).toContain('new')
      expect(keys, `seed ${seed}`).not.toContain('gone')
      expect(keys, `seed ${seed}`).not.toContain('moved')
      expect(latest, `seed ${seed}`).toEqual(await firstRows(cold, query))
    }, 60_000)
  }
})
