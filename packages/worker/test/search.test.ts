/**
 * Full-text search in the engine: live, ranked hits that follow local writes, deletes,
 * remote changes and move-outs; the index persisted in IndexedDB and reused on a cold
 * start (only the difference is re-indexed: counted, not timed), rebuilt when its snapshot
 * does not match; typed errors for bad searches.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay } from '@outpost/server-lite'
import { deserializeError, EmptySearchError, PredicateError, QueryError, SearchIndexFullError, SearchNotDeclaredError, UnknownSearchFieldError, type SerializedError } from '@outpost/core'
import type { IDBFactory } from 'fake-indexeddb'
import type { Engine } from '../src/engine'
import type { SearchHit, SearchSpec } from '../src/search/search-types'
import { searchCollectionOf } from '../src/search/live-searches'
import { engineOn, freshIdb, prng, tempDir, testSeed, unwrap, waitFor } from './helpers'

const engines = new Set<Engine>()
const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  for (const engine of engines) await engine.close()
  engines.clear()
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

function open(idb: IDBFactory, options: Parameters<typeof engineOn>[1] = {}): Engine {
  const engine = engineOn(idb, options)
  engines.add(engine)
  return engine
}

async function close(engine: Engine): Promise<void> {
  await engine.close()
  engines.delete(engine)
}

const DECLARED = { fields: ['title', 'notes'] }

/** Subscribes to a search; `latest()` is the last hits delivered. */
async function search(engine: Engine, spec: Omit<SearchSpec, 'map'> & { map?: string }): Promise<{ latest: () => readonly SearchHit[]; calls: () => number; id: number }> {
  let latest: readonly SearchHit[] = []
  let calls = 0
  const id = unwrap(
    await engine.subscribeSearch({ map: 'tasks', ...spec }, (hits) => {
      latest = hits
      calls++
    }),
  )
  return { latest: () => latest, calls: () => calls, id }
}

async function searchError(engine: Engine, spec: unknown): Promise<Error> {
  const result = await engine.subscribeSearch(spec as SearchSpec, () => {})
  if (result.ok) throw new Error('expected the search to fail')
  return deserializeError(result.error as SerializedError)
}

const WORDS = ['milk', 'bread', 'report', 'garden', 'invoice', 'paint', 'fence', 'budget', 'review', 'dentist', 'flight', 'tax', 'plumber', 'birthday', 'laptop']

/** `n` seeded task records. */
function tasks(n: number, seed: number): { key: string; value: { title: string; notes: string; done: boolean } }[] {
  const random = prng(seed)
  const word = (): string => WORDS[Math.floor(random() * WORDS.length)] as string
  return Array.from({ length: n }, (_, i) => ({
    key: `t${String(i).padStart(5, '0')}`,
    value: { title: `${word()} ${word()} ${word()}`, notes: random() < 0.5 ? '' : `${word()} ${word()} ${word()} ${word()}`, done: i % 2 === 0 },
  }))
}

describe('search', () => {
  it('answers ranked hits that follow writes, updates and deletes, offline', async () => {
    const engine = open(freshIdb())
    unwrap(await engine.set('tasks', 'a', { title: 'buy milk', notes: 'oat milk, two cartons', done: false }))
    unwrap(await engine.set('tasks', 'b', { title: 'call the plumber', notes: 'ask about the milk delivery too', done: false }))
    unwrap(await engine.set('tasks', 'c', { title: 'paint the fence', notes: '', done: true }))
    const milk = await search(engine, { declaration: DECLARED, text: 'milk' })
    // Ranked: "milk" in a short title and twice in the notes beats one mention in long notes.
    expect(milk.latest().map((h) => h.key)).toEqual(['a', 'b'])
    expect(milk.latest()[0]?.value).toEqual({ title: 'buy milk', notes: 'oat milk, two cartons', done: false })
    expect(milk.latest()[0]?.terms).toEqual(['milk'])
    expect((milk.latest()[0]?.score ?? 0) > (milk.latest()[1]?.score ?? 0)).toBe(true)

    // A new record that matches enters the live result; one that stops matching leaves it.
    unwrap(await engine.set('tasks', 'd', { title: 'milk milk milk', notes: '', done: false }))
    await waitFor('a new match', () => milk.latest().some((h) => h.key === 'd'))
    unwrap(await engine.update('tasks', 'b', { notes: 'no dairy here' }))
    await waitFor('an update that stops matching', () => !milk.latest().some((h) => h.key === 'b'))
    unwrap(await engine.delete('tasks', 'a'))
    await waitFor('a delete', () => !milk.latest().some((h) => h.key === 'a'))
    expect(milk.latest().map((h) => h.key)).toEqual(['d'])

    // Prefix (default), fields, filter, match, limit, fuzzy.
    expect((await search(engine, { text: 'plumb' })).latest().map((h) => h.key)).toEqual(['b'])
    expect((await search(engine, { text: 'plumb', prefix: false })).latest()).toEqual([])
    expect((await search(engine, { text: 'milk', fields: ['notes'] })).latest()).toEqual([])
    expect((await search(engine, { text: 'the', filter: { eq: ['done', true] } })).latest().map((h) => h.key)).toEqual(['c'])
    expect((await search(engine, { text: 'paint plumber', match: 'all' })).latest()).toEqual([])
    expect((await search(engine, { text: 'paint plumber', match: 'any' })).latest().map((h) => h.key).sort()).toEqual(['b', 'c'])
    expect((await search(engine, { text: 'the', limit: 1 })).latest()).toHaveLength(1)
    expect((await search(engine, { text: 'fense', prefix: false, fuzzy: 1 })).latest().map((h) => h.key)).toEqual(['c'])

    // An ended search hears nothing more.
    const calls = milk.calls()
    await engine.unsubscribeSearch(milk.id)
    unwrap(await engine.set('tasks', 'e', { title: 'milk again', notes: '', done: false }))
    await engine.flush()
    expect(milk.calls()).toBe(calls)
  })

  it('refuses bad searches with typed errors that say what to do', async () => {
    const engine = open(freshIdb())
    const undeclared = await searchError(engine, { map: 'tasks', text: 'milk' })
    expect(undeclared).toBeInstanceOf(SearchNotDeclaredError)
    expect(undeclared).toMatchObject({ code: 'SEARCH_NOT_DECLARED' })
    expect(undeclared.message).toContain("client.map('tasks', { search: { fields:")

    const empty = await searchError(engine, { map: 'tasks', declaration: DECLARED, text: '  ?! ' })
    expect(empty).toBeInstanceOf(EmptySearchError)
    expect(empty).toMatchObject({ code: 'SEARCH_EMPTY_QUERY' })

    const unknown = await searchError(engine, { map: 'tasks', declaration: DECLARED, text: 'milk', fields: ['owner'] })
    expect(unknown).toBeInstanceOf(UnknownSearchFieldError)
    expect(unknown).toMatchObject({ code: 'SEARCH_UNKNOWN_FIELD', details: { field: 'owner', indexed: ['title', 'notes'] } })

    expect(await searchError(engine, { map: 'tasks', declaration: DECLARED, text: 'milk', limit: 0 })).toBeInstanceOf(QueryError)
    expect(await searchError(engine, { map: 'tasks', declaration: { fields: [] }, text: 'milk' })).toBeInstanceOf(QueryError)
    expect(await searchError(engine, { map: 'tasks', declaration: DECLARED, text: 'milk', filter: { eq: ['done'] } })).toBeInstanceOf(PredicateError)
    // Once declared in this engine, a search without a declaration uses the map's index.
    expect((await search(engine, { text: 'milk' })).latest()).toEqual([])
  })

  it('stops growing at its record limit: new searches of the map fail with SearchIndexFullError', async () => {
    const engine = open(freshIdb(), { searchMaxRecords: 10 })
    for (let i = 0; i < 10; i++) unwrap(await engine.set('tasks', `k${i}`, { title: `milk ${i}`, notes: '' }))
    const running = await search(engine, { declaration: DECLARED, text: 'milk' })
    expect(running.latest()).toHaveLength(10)
    unwrap(await engine.set('tasks', 'k10', { title: 'milk 10', notes: '' }))
    await engine.flush()
    // The running search keeps answering from what is indexed; a new one is refused, with what to do.
    expect(running.latest().some((h) => h.key === 'k10')).toBe(false)
    const full = await searchError(engine, { map: 'tasks', text: 'milk' })
    expect(full).toBeInstanceOf(SearchIndexFullError)
    expect(full).toMatchObject({ code: 'SEARCH_INDEX_FULL', details: { limit: 10, records: 11 } })
    expect(full.message).toContain('client.shape(')
  })

  it('reuses the persisted index on a cold start: only the difference is re-indexed', async () => {
    const seed = testSeed('search cold start')
    const idb = freshIdb()
    const records = tasks(2_000, seed)
    const first = open(idb)
    for (const { key, value } of records) void first.set('tasks', key, value)
    await first.flush()
    const before = await search(first, { declaration: DECLARED, text: 'invoice' })
    expect(first.searchStats).toMatchObject({ indexed: 2_000, rebuilt: 1, restored: 0 })
    const expected = before.latest().map((h) => h.key)
    expect(expected.length).toBeGreaterThan(0)
    await close(first)

    // Cold start, and changes made before any search (as remote merges would be).
    const second = open(idb)
    unwrap(await second.update('tasks', 't00001', { title: 'zeppelin' }))
    unwrap(await second.update('tasks', 't00002', { done: true }))
    unwrap(await second.delete('tasks', 't00003'))
    unwrap(await second.set('tasks', 'new', { title: 'zeppelin ride', notes: '', done: false }))
    const zeppelin = await search(second, { declaration: DECLARED, text: 'zeppelin' })
    // Restored, not rebuilt: two records (re-)indexed (t00001's text changed, 'new' appeared),
    // two removed (t00001's old text, t00003); t00002 changed a field that is not indexed.
    expect(second.searchStats).toMatchObject({ restored: 1, rebuilt: 0, indexed: 2, removed: 2 })
    expect(zeppelin.latest().map((h) => h.key).sort()).toEqual(['new', 't00001'])
    const caughtUp = (await search(second, { text: 'invoice', limit: 1_000 })).latest()
    expect(caughtUp.some((h) => h.key === 't00003')).toBe(false)
    await close(second)

    // Nothing changed: nothing re-indexed.
    const third = open(idb)
    await search(third, { declaration: DECLARED, text: 'zeppelin' })
    expect(third.searchStats).toMatchObject({ restored: 1, rebuilt: 0, indexed: 0, removed: 0 })
    // Without the snapshot the index is rebuilt from all records, and finds the same records as the restored one
    // (scores may differ in late digits: MiniSearch keeps a removed record's terms until it vacuums).
    await third.store?.commit({ deletes: [{ collection: searchCollectionOf('tasks'), key: 'index' }] })
    await close(third)
    const fourth = open(idb)
    const rebuilt = (await search(fourth, { declaration: DECLARED, text: 'invoice', limit: 1_000 })).latest()
    expect(fourth.searchStats).toMatchObject({ restored: 0, rebuilt: 1, indexed: 2_000 })
    expect(rebuilt.map((h) => h.key).sort()).toEqual(caughtUp.map((h) => h.key).sort())
    expect(expected.length).toBeGreaterThan(0)
  })

  it('rebuilds when the snapshot does not match (other fields, or unreadable)', async () => {
    const idb = freshIdb()
    const first = open(idb)
    for (const { key, value } of tasks(300, 7)) void first.set('tasks', key, value)
    await first.flush()
    await search(first, { declaration: DECLARED, text: 'milk' })
    await close(first)

    // Other declared fields: the snapshot is not used.
    const second = open(idb)
    await search(second, { declaration: { fields: ['title'] }, text: 'milk' })
    expect(second.searchStats).toMatchObject({ restored: 0, rebuilt: 1, indexed: 300 })
    await close(second)

    // An unreadable snapshot: rebuilt, and the search still answers.
    const third = open(idb)
    unwrap(await third.ready())
    await third.store?.commit({ puts: [{ collection: searchCollectionOf('tasks'), key: 'index', value: new Uint8Array([1, 2, 3]) }] })
    const hits = await search(third, { declaration: { fields: ['title'] }, text: 'milk' })
    expect(third.searchStats).toMatchObject({ restored: 0, rebuilt: 1, indexed: 300 })
    expect(hits.latest().length).toBeGreaterThan(0)
  })

  it('follows remote changes, and a record moving out of the shape leaves the index', async () => {
    const dir = tempDir()
    const relay: Relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
    cleanups.push(async () => {
      await relay.close()
      dir.remove()
    })
    const writer = open(freshIdb(), { url: relay.url })
    unwrap(await writer.subscribeShape({ map: 'tasks' }))
    unwrap(await writer.set('tasks', 'x', { title: 'quarterly report', notes: '', owner: 'me' }))
    unwrap(await writer.set('tasks', 'y', { title: 'annual report', notes: '', owner: 'me' }))
    const reader = open(freshIdb(), { url: relay.url })
    unwrap(await reader.subscribeShape({ map: 'tasks', where: { eq: ['owner', 'me'] } }))
    const report = await search(reader, { declaration: DECLARED, text: 'report' })
    await waitFor('remote records indexed', () => report.latest().length === 2)

    unwrap(await writer.update('tasks', 'x', { owner: 'other' }))
    await waitFor('move-out leaves the hits', () => report.latest().map((h) => h.key).join() === 'y')
    unwrap(await writer.set('tasks', 'z', { title: 'report the bug', notes: '', owner: 'me' }))
    await waitFor('remote insert joins the hits', () => report.latest().some((h) => h.key === 'z'))
  })
})
