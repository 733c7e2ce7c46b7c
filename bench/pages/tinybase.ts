/**
 * TinyBase's benchmark page: a MergeableStore (table `items`, one row per record, one cell
 * per field) with the IndexedDB persister (auto-save) and a WsSynchronizer to its WsServer.
 */
import { createMergeableStore, type MergeableStore, type Row } from 'tinybase'
import { createIndexedDbPersister, type IndexedDbPersister } from 'tinybase/persisters/persister-indexed-db'
import { createWsSynchronizer, type WsSynchronizer } from 'tinybase/synchronizers/synchronizer-ws-client'
import { keyOf, makeRecord } from '../lib/data'
import { RevisionWatch, install, until, type OpenOptions, type SystemPage } from './api'

let store: MergeableStore | undefined
let persister: IndexedDbPersister | undefined
let synchronizer: WsSynchronizer<WebSocket> | undefined
let serverUrl: string | null = null

function current(): MergeableStore {
  if (store === undefined) throw new Error('tinybase page: open() first')
  return store
}

async function connect(): Promise<void> {
  if (serverUrl === null) return
  const socket = new WebSocket(serverUrl)
  synchronizer = await createWsSynchronizer(current(), socket, 10)
  await synchronizer.startSync()
}

const page: SystemPage = {
  async open({ url, db, doc }: OpenOptions) {
    serverUrl = url === null ? null : `${url}/${doc}`
    store = createMergeableStore()
    persister = createIndexedDbPersister(store, db)
    await persister.load()
    await persister.startAutoSave()
    await connect()
  },
  async waitSynced(n) {
    await until(() => current().getRowCount('items') >= n, 5)
    // Auto-save is scheduled behind the change; an explicit save is how an app knows it is on disk.
    await persister?.save()
  },
  async write(i, rev) {
    current().setRow('items', keyOf(i), makeRecord(i, rev) as unknown as Row)
  },
  async watch(indexes, rev) {
    const s = current()
    const keys = indexes.map(keyOf)
    const watch = new RevisionWatch(keys, rev)
    const listener = s.addRowListener('items', null, (_store, _table, rowId) => {
      watch.seen(rowId, s.getRow('items', rowId))
    })
    for (const key of keys) watch.seen(key, s.getRow('items', key))
    return { done: watch.done.finally(() => s.delListener(listener)) }
  },
  async firstQuery() {
    const s = current()
    const rows: unknown[] = []
    for (const rowId of s.getRowIds('items')) {
      if (s.getCell('items', rowId, 'group') === 7) rows.push(s.getRow('items', rowId))
      if (rows.length === 100) break
    }
    return rows.length
  },
  async offline() {
    await synchronizer?.destroy()
    synchronizer = undefined
  },
  async online() {
    await connect()
  },
  async close() {
    await synchronizer?.destroy()
    await persister?.destroy()
    store = undefined
    persister = undefined
    synchronizer = undefined
  },
}
install(page)
