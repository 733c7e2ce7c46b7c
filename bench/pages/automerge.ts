/**
 * Automerge-repo's benchmark page: one document `{ items: { [key]: record } }` in a Repo
 * with the IndexedDB storage adapter and the WebSocket client adapter to its sync server.
 */
import { Repo, type DocHandle, type AutomergeUrl } from '@automerge/automerge-repo'
import { IndexedDBStorageAdapter } from '@automerge/automerge-repo-storage-indexeddb'
import { BrowserWebSocketClientAdapter } from '@automerge/automerge-repo-network-websocket'
import { keyOf, makeRecord, type BenchRecord } from '../lib/data'
import { RevisionWatch, install, until, type OpenOptions, type SystemPage } from './api'

interface ItemsDoc {
  items: Record<string, BenchRecord>
}

let repo: Repo | undefined
let handle: DocHandle<ItemsDoc> | undefined
let adapter: BrowserWebSocketClientAdapter | undefined
let serverUrl: string | null = null

function current(): DocHandle<ItemsDoc> {
  if (handle === undefined) throw new Error('automerge page: open() first')
  return handle
}

const page: SystemPage = {
  async open({ url, db, doc }: OpenOptions) {
    serverUrl = url
    adapter = url === null ? undefined : new BrowserWebSocketClientAdapter(url)
    repo = new Repo({ storage: new IndexedDBStorageAdapter(db), network: adapter === undefined ? [] : [adapter] })
    handle = await repo.find<ItemsDoc>(doc as AutomergeUrl)
  },
  async waitSynced(n) {
    await until(() => Object.keys(current().doc()?.items ?? {}).length >= n, 5)
    await repo?.flush()
  },
  async write(i, rev) {
    const record = makeRecord(i, rev)
    current().change((d) => {
      d.items[record.id] = record
    })
  },
  async watch(indexes, rev) {
    const h = current()
    const watch = new RevisionWatch(indexes.map(keyOf), rev)
    const check = (): void => {
      const items = h.doc()?.items ?? {}
      for (const key of indexes.map(keyOf)) watch.seen(key, items[key])
    }
    h.on('change', check)
    check()
    return { done: watch.done.finally(() => h.off('change', check)) }
  },
  async firstQuery() {
    const rows: unknown[] = []
    for (const value of Object.values(current().doc()?.items ?? {})) {
      if (value.group === 7) rows.push(value)
      if (rows.length === 100) break
    }
    return rows.length
  },
  async offline() {
    if (repo !== undefined && adapter !== undefined) repo.networkSubsystem.removeNetworkAdapter(adapter)
    adapter = undefined
  },
  async online() {
    if (repo === undefined || serverUrl === null) return
    adapter = new BrowserWebSocketClientAdapter(serverUrl)
    repo.networkSubsystem.addNetworkAdapter(adapter)
  },
  async close() {
    await repo?.shutdown()
    repo = undefined
    handle = undefined
    adapter = undefined
  },
}
install(page)
