/**
 * Yjs's benchmark page: a `Y.Map` of records (each record a plain JSON value, Yjs's cheapest
 * layout) persisted by y-indexeddb and synced by y-websocket.
 */
import * as Y from 'yjs'
import { IndexeddbPersistence } from 'y-indexeddb'
import { WebsocketProvider } from 'y-websocket'
import { keyOf, makeRecord } from '../lib/data'
import { RevisionWatch, install, until, type OpenOptions, type SystemPage } from './api'

let doc: Y.Doc | undefined
let persistence: IndexeddbPersistence | undefined
let provider: WebsocketProvider | undefined

function items(): Y.Map<unknown> {
  if (doc === undefined) throw new Error('yjs page: open() first')
  return doc.getMap('items')
}

/**
 * y-indexeddb starts one IndexedDB transaction per update as the update happens; a later
 * transaction over the same store cannot finish before those, so finishing one proves the
 * updates so far are on disk.
 */
function persisted(): Promise<void> {
  const db = (persistence as unknown as { db: IDBDatabase | null } | undefined)?.db
  if (db === null || db === undefined) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const tx = db.transaction('updates', 'readonly')
    tx.objectStore('updates').count()
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
  })
}

const page: SystemPage = {
  async open({ url, db, doc: room }: OpenOptions) {
    doc = new Y.Doc()
    persistence = new IndexeddbPersistence(db, doc)
    await persistence.whenSynced
    if (url !== null) provider = new WebsocketProvider(url, room, doc)
  },
  async waitSynced(n) {
    await until(() => items().size >= n, 5)
    await persisted()
  },
  async write(i, rev) {
    items().set(keyOf(i), makeRecord(i, rev))
  },
  async watch(indexes, rev) {
    const watch = new RevisionWatch(indexes.map(keyOf), rev)
    const map = items()
    const observer = (event: Y.YMapEvent<unknown>): void => {
      for (const key of event.keysChanged) watch.seen(key, map.get(key))
    }
    map.observe(observer)
    // Records already at the revision count too (e.g. they arrived before the observer).
    for (const key of indexes.map(keyOf)) watch.seen(key, map.get(key))
    return { done: watch.done.finally(() => map.unobserve(observer)) }
  },
  async firstQuery() {
    const rows: unknown[] = []
    for (const value of items().values()) {
      if ((value as { group?: unknown }).group === 7) rows.push(value)
      if (rows.length === 100) break
    }
    return rows.length
  },
  async offline() {
    provider?.disconnect()
  },
  async online() {
    provider?.connect()
  },
  async close() {
    provider?.destroy()
    await persistence?.destroy()
    doc?.destroy()
    provider = undefined
    persistence = undefined
    doc = undefined
  },
}
install(page)
