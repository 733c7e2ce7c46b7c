/** Outpost's benchmark page: the public SDK (`@outpost/client`) in its default SharedWorker mode. */
import { createClient, type LiveQuery, type LwwMap, type OutpostClient, type ShapeHandle } from '@outpost/client'
import { keyOf, makeRecord, type BenchRecord } from '../lib/data'
import { RevisionWatch, install, until, type Armed, type OpenOptions, type SystemPage } from './api'

let client: OutpostClient | undefined
let shape: ShapeHandle | undefined
let dbName = ''
let mapName = 'items'
let openedAt = 0

function items(): LwwMap<BenchRecord> {
  if (client === undefined) throw new Error('outpost page: open() first')
  return client.map<BenchRecord>(mapName)
}

/** Reads the engine's `lastSyncAt` straight from its IndexedDB database: present there means the synced records were committed with it (see the engine's flushRemote). */
function committedSyncAt(): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(`outpost:${dbName}`)
    request.onerror = () => reject(request.error)
    request.onsuccess = () => {
      const db = request.result
      if (!db.objectStoreNames.contains('meta')) {
        db.close()
        resolve(0)
        return
      }
      const get = db.transaction('meta', 'readonly').objectStore('meta').get('lastSyncAt')
      get.onsuccess = () => {
        db.close()
        resolve(typeof get.result === 'number' ? get.result : 0)
      }
      get.onerror = () => {
        db.close()
        reject(get.error)
      }
    }
  })
}

async function watchRows(indexes: readonly number[], rev: number): Promise<Armed> {
  const keys = indexes.map(keyOf)
  const watch = new RevisionWatch(keys, rev)
  const live: LiveQuery<BenchRecord> = items().query({ where: { in: ['id', keys] } })
  let first: (() => void) | undefined
  const isLive = new Promise<void>((resolve) => {
    first = resolve
  })
  const stop = live.subscribe((rows) => {
    first?.()
    for (const row of rows) watch.seen(row.key, row.value)
  })
  await isLive
  return { done: watch.done.finally(stop) }
}

const page: SystemPage = {
  async open({ url, db, doc }: OpenOptions) {
    dbName = db
    mapName = doc
    openedAt = Date.now()
    client = url === null ? createClient({ name: db }) : createClient({ name: db, url })
    await client.ready()
    if (url !== null) shape = client.sync(mapName)
  },
  async waitSynced(n) {
    await shape?.id
    const last = keyOf(n - 1)
    await until(async () => (await committedSyncAt()) >= openedAt - 1000 && (await items().get(last)) !== undefined, 5)
  },
  async write(i, rev) {
    await items().set(keyOf(i), makeRecord(i, rev))
  },
  watch: watchRows,
  async firstQuery() {
    const rows = await items().query({ where: { eq: ['group', 7] }, limit: 100 }).get()
    return rows.length
  },
  async offline() {
    await client?.setOffline(true)
  },
  async online() {
    await client?.setOffline(false)
  },
  async close() {
    await client?.close()
    client = undefined
    shape = undefined
  },
}
install(page)
