/**
 * One writer per database: an IdbStore holds its database's exclusive Web Lock from open to
 * close, so a second engine on the same database (another deploy's SharedWorker, a leader
 * tab overlapping the next) waits for it instead of writing beside it with a stale page
 * cache, and gives up with DATABASE_LOCKED (having read and written nothing) when it waits
 * too long. Web Locks come from `web-locks.ts`, a small real implementation (Node 20 has none).
 */
import 'fake-indexeddb/auto'
import { afterEach, describe, expect, it } from 'vitest'
import { DatabaseLockedError, type Value } from '@outpost/core'
import { IdbStore, dbLockName } from '../src/store/idb-store'
import { engineOn, freshIdb, unwrap } from './helpers'
import { TestLockManager } from './web-locks'

const record = (title: string): Value => ({ fields: [['title', title, '0000000001-0000-r']], deleted: null }) as unknown as Value

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('the database writer lock', () => {
  it('makes a second store on the same database wait until the first closes, then see everything it wrote', async () => {
    const idb = freshIdb()
    const locks = new TestLockManager()
    const first = await IdbStore.open('db', { indexedDB: idb, locks: locks.asLockManager })
    await first.commit({ puts: [{ collection: 'c', key: 'a', value: record('from the first') }] })
    expect((await locks.query()).held).toEqual([{ name: dbLockName('db'), mode: 'exclusive' }])

    let secondOpen = false
    const opening = IdbStore.open('db', { indexedDB: idb, locks: locks.asLockManager }).then((store) => {
      secondOpen = true
      return store
    })
    // The first still writes (its page cache and directory stay exact: no one else writes).
    await first.commit({ puts: [{ collection: 'c', key: 'b', value: record('also from the first') }] })
    await new Promise((r) => setTimeout(r, 50))
    expect(secondOpen).toBe(false)
    expect((await locks.query()).pending).toEqual([{ name: dbLockName('db'), mode: 'exclusive' }])

    await first.close()
    const second = await opening
    cleanup.push(() => second.close())
    expect(await second.get('c', 'a')).toEqual(record('from the first'))
    expect(await second.get('c', 'b')).toEqual(record('also from the first'))
    await second.commit({ puts: [{ collection: 'c', key: 'c', value: record('from the second') }] })
    expect(await second.count('c')).toBe(3)
  })

  it('refuses with DATABASE_LOCKED, saying what to do, when the holder keeps the database too long; the holder is unaffected', async () => {
    const idb = freshIdb()
    const locks = new TestLockManager()
    const first = await IdbStore.open('db', { indexedDB: idb, locks: locks.asLockManager })
    cleanup.push(() => first.close())
    const refused = await IdbStore.open('db', { indexedDB: idb, locks: locks.asLockManager, lockWaitMs: 100 }).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(DatabaseLockedError)
    expect((refused as DatabaseLockedError).code).toBe('DATABASE_LOCKED')
    expect((refused as DatabaseLockedError).message).toMatch(/Close the app's other tabs/)
    expect((await locks.query()).pending).toEqual([])
    await first.commit({ puts: [{ collection: 'c', key: 'a', value: 1 }] })
    expect(await first.get('c', 'a')).toBe(1)
  })

  it('locks per database: stores of two databases open side by side', async () => {
    const idb = freshIdb()
    const locks = new TestLockManager()
    const a = await IdbStore.open('db-a', { indexedDB: idb, locks: locks.asLockManager, lockWaitMs: 100 })
    const b = await IdbStore.open('db-b', { indexedDB: idb, locks: locks.asLockManager, lockWaitMs: 100 })
    await a.close()
    await b.close()
    // A lock is released once the holder's promise settles (a few microtasks after close).
    await new Promise((r) => setTimeout(r, 0))
    expect((await locks.query()).held).toEqual([])
  })

  it('an engine whose database is held elsewhere fails to start with DATABASE_LOCKED instead of running in memory', async () => {
    const idb = freshIdb()
    const locks = new TestLockManager()
    const holder = await IdbStore.open('outpost:test', { indexedDB: idb, locks: locks.asLockManager })
    cleanup.push(() => holder.close())
    const previous = Object.getOwnPropertyDescriptor(globalThis, 'navigator')
    Object.defineProperty(globalThis, 'navigator', { value: { locks: locks.asLockManager }, configurable: true })
    cleanup.push(async () => {
      if (previous === undefined) delete (globalThis as { navigator?: unknown }).navigator
      else Object.defineProperty(globalThis, 'navigator', previous)
    })
    const engine = engineOn(idb)
    cleanup.push(() => engine.close())
    const started = engine.ready()
    // It waits for the holder first (DB_LOCK_WAIT_MS): release it, and the engine starts durable.
    await new Promise((r) => setTimeout(r, 50))
    await holder.close()
    const status = unwrap(await started)
    expect(status.durable).toBe(true)
    unwrap(await engine.set('m', 'k', { ok: true }))
  })
})
