/**
 * The engine without a relay (or with an unreachable one): local writes are durable in
 * IndexedDB before they resolve and never wait on the network; live queries see a tab's
 * own writes offline; per-write work does not grow with the map; no IndexedDB → memory.
 */
import { describe, expect, it } from 'vitest'
import { deserializeError, InvalidValueError, QueryError, QuotaExceededError, type Store } from '@outpost/core'
import { IdbStore, PAGE_MAX_RECORDS } from '../src/store/idb-store'
import { OUTBOX_COLLECTION } from '../src/outbox'
import type { Row } from '../src/engine-api'
import { engineOn, freshIdb, unwrap, waitFor } from './helpers'

describe('engine, local', () => {
  it("shows a tab's own writes in its live query, offline, in order", async () => {
    const engine = engineOn(freshIdb())
    unwrap(await engine.ready())
    const seen: (readonly Row[])[] = []
    unwrap(await engine.subscribeQuery({ map: 'todos', where: { eq: ['done', false] }, orderBy: [['title', 'asc']] }, (rows) => seen.push(rows)))
    expect(seen.at(-1)).toEqual([])
    unwrap(await engine.set('todos', 't1', { title: 'b milk', done: false }))
    unwrap(await engine.set('todos', 't2', { title: 'a bread', done: false }))
    await waitFor('query update', () => seen.at(-1)?.length === 2)
    expect(seen.at(-1)?.map((r) => r.key)).toEqual(['t2', 't1'])
    unwrap(await engine.update('todos', 't2', { done: true }))
    await waitFor('update leaves the query', () => seen.at(-1)?.length === 1)
    expect(unwrap(await engine.get('todos', 't2'))).toEqual({ title: 'a bread', done: true })
    unwrap(await engine.delete('todos', 't1'))
    await waitFor('delete leaves the query', () => seen.at(-1)?.length === 0)
    expect(unwrap(await engine.get('todos', 't1'))).toBeUndefined()
    expect((await engine.status()).pendingWrites).toBe(4)
    await engine.close()
  })

  it('shows a write in live queries before its commit, and undoes it when the commit fails', async () => {
    const idb = freshIdb()
    const engine = engineOn(idb)
    unwrap(await engine.ready())
    unwrap(await engine.set('todos', 't1', { title: 'v1' }))
    const titles: unknown[] = []
    unwrap(await engine.subscribeQuery({ map: 'todos' }, (rows) => titles.push(rows[0]?.value['title'])))
    const store = engine.store as Store
    const commit = store.commit.bind(store)

    // Optimistic: the live query has the new value while its commit is still held back.
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    store.commit = async (batch) => {
      await held
      store.commit = commit
      return commit(batch)
    }
    const pending = engine.update('todos', 't1', { title: 'v2' })
    await waitFor('optimistic update while the commit is held', () => titles.at(-1) === 'v2', 3_000)
    release()
    unwrap(await pending)

    // A commit the browser refuses (quota) is undone in memory and reported with its type.
    // fake-indexeddb cannot run out of quota, so the store refuses this one commit.
    store.commit = () => {
      store.commit = commit
      return Promise.reject(new QuotaExceededError('quota exceeded (injected)'))
    }
    const refused = await engine.update('todos', 't1', { title: 'v3' })
    expect(refused.ok).toBe(false)
    if (!refused.ok) expect(deserializeError(refused.error)).toBeInstanceOf(QuotaExceededError)
    await waitFor('rolled back', () => titles.at(-1) === 'v2')
    expect(titles).toContain('v3')
    expect(unwrap(await engine.get('todos', 't1'))).toEqual({ title: 'v2' })
    const pendingBefore = (await engine.status()).pendingWrites
    await engine.close()

    // Nothing of the refused write survives a restart: neither the record nor an outbox entry.
    const again = engineOn(idb)
    unwrap(await again.ready())
    expect(unwrap(await again.get('todos', 't1'))).toEqual({ title: 'v2' })
    expect((await again.status()).pendingWrites).toBe(pendingBefore)
    await again.close()
  })

  it('a write re-sent with the same call id applies once, also after an engine restart', async () => {
    // What a follower tab does when its leader closed before answering: the call goes again
    // to the next engine with the same call id.
    const idb = freshIdb()
    const engine = engineOn(idb)
    unwrap(await engine.ready())
    const first = unwrap(await engine.counterAdd('likes:1', 1, 'tab-a:7'))
    const again = unwrap(await engine.counterAdd('likes:1', 1, 'tab-a:7'))
    expect(again.opId).toBe(first.opId)
    const second = unwrap(await engine.counterAdd('likes:1', 1, 'tab-a:8'))
    let value: unknown
    unwrap(await engine.subscribeValue('counter', 'likes:1', '', (v) => (value = v)))
    await waitFor('counter value', () => value === 2)
    const pending = (await engine.status()).pendingWrites
    await engine.close()

    const next = engineOn(idb)
    unwrap(await next.ready())
    const afterRestart = unwrap(await next.counterAdd('likes:1', 1, 'tab-a:8'))
    expect(afterRestart.opId).toBe(second.opId)
    unwrap(await next.subscribeValue('counter', 'likes:1', '', (v) => (value = v)))
    await waitFor('counter value after restart', () => value === 2)
    expect((await next.status()).pendingWrites).toBe(pending)
    await next.close()
  })

  it('keys like __proto__ and "" are ordinary keys and fields', async () => {
    const engine = engineOn(freshIdb())
    const record = Object.defineProperty({ a: 1 } as Record<string, number>, '__proto__', { value: 2, enumerable: true })
    unwrap(await engine.set('m', '__proto__', record))
    unwrap(await engine.set('m', '', { x: 1 }))
    expect(unwrap(await engine.get('m', '__proto__'))).toEqual(record)
    expect(Object.getPrototypeOf(unwrap(await engine.get('m', '__proto__')))).not.toBe(2)
    expect(unwrap(await engine.get('m', ''))).toEqual({ x: 1 })
    await engine.close()
  })

  it('answers bad input with typed errors and stores nothing', async () => {
    const engine = engineOn(freshIdb())
    const bad = await engine.set('m', 'k', { f: (() => 1) as never })
    expect(bad.ok).toBe(false)
    if (!bad.ok) {
      const error = deserializeError(bad.error)
      expect(error).toBeInstanceOf(InvalidValueError)
      expect(error.code).toBe('INVALID_VALUE')
    }
    const badQuery = await engine.subscribeQuery({ map: 'm', limit: -1 }, () => undefined)
    expect(!badQuery.ok && deserializeError(badQuery.error)).toBeInstanceOf(QueryError)
    expect(unwrap(await engine.get('m', 'k'))).toBeUndefined()
    expect((await engine.status()).pendingWrites).toBe(0)
    await engine.close()
  })

  it('counters and OR maps work offline and survive restart', async () => {
    const idb = freshIdb()
    let engine = engineOn(idb)
    const values: unknown[] = []
    unwrap(await engine.subscribeValue('counter', 'clicks', '', (v) => values.push(v)))
    unwrap(await engine.counterAdd('clicks', 5))
    unwrap(await engine.counterAdd('clicks', -2))
    unwrap(await engine.orAdd('tags', 't1', 'red'))
    unwrap(await engine.orAdd('tags', 't1', 'blue'))
    unwrap(await engine.orRemove('tags', 't1', 'red'))
    await waitFor('counter update', () => values.at(-1) === 3)
    await engine.close()
    engine = engineOn(idb)
    const after: unknown[] = []
    unwrap(await engine.subscribeValue('counter', 'clicks', '', (v) => after.push(v)))
    unwrap(await engine.subscribeValue('or', 'tags', 't1', (v) => after.push(v)))
    expect(after).toEqual([3, ['blue']])
    await engine.close()
  })

  it('10,000 writes made offline are all in IndexedDB, and none waited on the network', async () => {
    const idb = freshIdb()
    // A relay URL where nothing listens: the engine keeps trying to connect in the background.
    const engine = engineOn(idb, { url: 'ws://127.0.0.1:9/', backoff: { baseMs: 5, capMs: 20 } })
    unwrap(await engine.ready())
    const started = performance.now()
    const receipts = await Promise.all(Array.from({ length: 10_000 }, (_, i) => engine.set('notes', `n${i}`, { text: `note ${i}`, i })))
    const ms = performance.now() - started
    expect(receipts.every((r) => r.ok)).toBe(true)
    const status = await engine.status()
    expect(status.online).toBe(false)
    expect(status.pendingWrites).toBe(10_000)
    console.log(`[figure] 10,000 offline writes durable in ${ms.toFixed(0)} ms (${((10_000 / ms) * 1000).toFixed(0)} writes/s, fake-indexeddb)`)
    await engine.close()
    // Read IndexedDB directly: every record and every outbox entry is there.
    const store = await IdbStore.open('outpost:test', { indexedDB: idb })
    expect(await store.count('r/lww/notes')).toBe(10_000)
    expect(await store.count(OUTBOX_COLLECTION)).toBe(10_000)
    expect(await store.get('r/lww/notes', 'n9999')).toBeDefined()
    await store.close()
  })

  it('per-write work does not grow with the size of the map', async () => {
    const measure = async (size: number): Promise<{ entriesPerWrite: number; msPerWrite: number; notifiedRows: number }> => {
      const idb = freshIdb()
      const seed = await IdbStore.open('outpost:test', { indexedDB: idb })
      const stamp = '0000000001-0000-seed'
      for (let i = 0; i < size; i += 10_000) {
        await seed.commit({
          puts: Array.from({ length: Math.min(10_000, size - i) }, (_, j) => ({
            collection: 'r/lww/big',
            key: `k${i + j}`,
            value: { fields: [['n', i + j, stamp]], deleted: null },
          })),
        })
      }
      await seed.close()
      const engine = engineOn(idb)
      let notifiedRows = 0
      unwrap(await engine.subscribeQuery({ map: 'big', orderBy: [['n', 'desc']], limit: 10 }, (rows) => (notifiedRows = Math.max(notifiedRows, rows.length))))
      const store = engine.store as IdbStore
      const before = { ...store.stats }
      const started = performance.now()
      for (let i = 0; i < 200; i++) unwrap(await engine.update('big', `k${(i * 7919) % size}`, { n: size + i }))
      const ms = performance.now() - started
      const entriesPerWrite = (store.stats.entriesWritten - before.entriesWritten) / 200
      await engine.close()
      return { entriesPerWrite, msPerWrite: ms / 200, notifiedRows }
    }
    const small = await measure(1_000)
    const large = await measure(50_000)
    console.log(
      `[figure] per write: map of 1,000 → ${small.msPerWrite.toFixed(3)} ms, ${small.entriesPerWrite.toFixed(1)} entries serialized; ` +
        `map of 50,000 → ${large.msPerWrite.toFixed(3)} ms, ${large.entriesPerWrite.toFixed(1)} entries serialized (fake-indexeddb)`,
    )
    // One record page and one outbox page per write, each bounded, whatever the map size.
    // (Not compared with the small map's figure: pages split 16 ways, so their occupancy
    // swings between 1/16 of the bound and all of it as a map grows, whatever its size.)
    expect(small.entriesPerWrite).toBeLessThanOrEqual(2 * PAGE_MAX_RECORDS)
    expect(large.entriesPerWrite).toBeLessThanOrEqual(2 * PAGE_MAX_RECORDS)
    // Notifications carry the query's rows (limit 10), never the map.
    expect(large.notifiedRows).toBe(10)
  })

  it('runs in memory, and says so, without IndexedDB', async () => {
    const engine = engineOn(freshIdb(), { indexedDB: null })
    const status = unwrap(await engine.ready())
    expect(status.durable).toBe(false)
    unwrap(await engine.set('m', 'k', { a: 1 }))
    expect(unwrap(await engine.get('m', 'k'))).toEqual({ a: 1 })
    await engine.close()
  })

  it('keeps one replica id per database across restarts', async () => {
    const idb = freshIdb()
    const a = engineOn(idb)
    unwrap(await a.ready())
    const id = a.replicaId
    await a.close()
    const b = engineOn(idb)
    unwrap(await b.ready())
    expect(b.replicaId).toBe(id)
    const other = engineOn(freshIdb())
    unwrap(await other.ready())
    expect(other.replicaId).not.toBe(id)
    await Promise.all([b.close(), other.close()])
  })
})
