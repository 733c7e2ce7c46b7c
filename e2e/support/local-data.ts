/**
 * Reads what a device holds in IndexedDB, from inside its page, without going through the
 * engine: the proof that a shape keeps data off the device, not just off the screen.
 *
 * The layout is the worker's (packages/worker/src/store/idb-store.ts, layout version 2):
 * database `outpost:<name>`, object store `pages` keyed `[collection, prefix]`, each value a
 * compact page (`page-codec.ts`): `{ k: keys, s: stamps, n: field names, e: entries }`, an
 * LWW record's entry being `[deleted stamp index | -1, name index, value, stamp index, …]`;
 * an LWW map's collection is `r/lww/<map>`.
 */
import type { Page } from '@playwright/test'

/** The keys of the live (not deleted) records of an LWW map stored on the device, sorted. */
export async function storedRecordKeys(page: Page, dbName: string, map: string): Promise<string[]> {
  return page.evaluate(
    async ({ database, collection }) => {
      // Opening a database that does not exist would create an empty one under the engine's feet.
      const known = await indexedDB.databases()
      if (!known.some((d) => d.name === database)) throw new Error(`no IndexedDB database "${database}" on this device (has: ${known.map((d) => d.name).join(', ')})`)
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const request = indexedDB.open(database)
        request.onsuccess = () => resolve(request.result)
        request.onerror = () => reject(request.error ?? new Error(`could not open ${database}`))
      })
      try {
        const keys: string[] = []
        await new Promise<void>((resolve, reject) => {
          const tx = db.transaction('pages', 'readonly')
          const range = IDBKeyRange.bound([collection, ''], [collection, '\uffff'])
          const request = tx.objectStore('pages').openCursor(range)
          request.onsuccess = () => {
            const cursor = request.result
            if (cursor === null) return
            const page = cursor.value as { k: string[]; s: string[]; e: unknown[] }
            page.k.forEach((key, i) => {
              const entry = page.e[i] as number[]
              const deleted = entry[0] as number
              // A record is live when one of its fields was written after its tombstone.
              for (let j = 3; j < entry.length; j += 3) {
                if (deleted < 0 || (page.s[entry[j] as number] as string) > (page.s[deleted] as string)) {
                  keys.push(key)
                  return
                }
              }
            })
            cursor.continue()
          }
          tx.oncomplete = () => resolve()
          tx.onerror = () => reject(tx.error ?? new Error('IndexedDB read failed'))
        })
        return keys.sort()
      } finally {
        db.close()
      }
    },
    { database: `outpost:${dbName}`, collection: `r/lww/${map}` },
  )
}
