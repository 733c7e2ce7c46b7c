/** The raw baselines measured in the browser: IndexedDB put/getAll and page ↔ SharedWorker postMessage. */
import { keyOf, makeRecord } from '../lib/data'

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error)
  })
}

/** The raw page's API (`window.raw`). */
export interface RawPage {
  /** One readwrite transaction putting `n` records (one value each), awaited to commit; then `getAll` in a new connection. */
  idb(n: number, db: string): Promise<{ putMs: number; getAllMs: number }>
  /**
   * `count` samples of page → SharedWorker → page round trips, each sample the mean of 10
   * sequential trips (a page's clock is coarsened to 0.1 ms, finer than one trip).
   */
  echo(count: number): Promise<number[]>
}

let worker: SharedWorker | undefined

const raw: RawPage = {
  async idb(n, name) {
    const records = Array.from({ length: n }, (_, i) => makeRecord(i))
    const open = indexedDB.open(name, 1)
    open.onupgradeneeded = () => open.result.createObjectStore('items')
    const db = await request(open)
    const t0 = performance.now()
    const tx = db.transaction('items', 'readwrite', { durability: 'default' })
    const store = tx.objectStore('items')
    for (const record of records) store.put(record, keyOf(Number(record.id.slice(1))))
    await done(tx)
    const putMs = performance.now() - t0
    db.close()
    const t1 = performance.now()
    const again = await request(indexedDB.open(name, 1))
    const all = await request(again.transaction('items', 'readonly').objectStore('items').getAll())
    const getAllMs = performance.now() - t1
    again.close()
    if (all.length !== n) throw new Error(`raw getAll read ${all.length} of ${n}`)
    await request(indexedDB.deleteDatabase(name))
    return { putMs, getAllMs }
  },
  async echo(count) {
    worker ??= new SharedWorker(new URL('./raw-echo-worker.ts', import.meta.url), { type: 'module', name: 'raw-echo' })
    const port = worker.port
    port.start()
    const times: number[] = []
    for (let i = 0; i < count; i++) {
      const t0 = performance.now()
      for (let k = 0; k < 10; k++) {
        await new Promise<void>((resolve) => {
          port.onmessage = () => resolve()
          port.postMessage({ i, record: makeRecord(i) })
        })
      }
      times.push((performance.now() - t0) / 10)
    }
    return times
  },
}
;(globalThis as unknown as { raw: RawPage }).raw = raw
