/**
 * Opening an Outpost database at the current layout version, upgrading older layouts in
 * IndexedDB's own `versionchange` transaction: the upgrade commits whole or not at all, so
 * a tab closed, a worker killed or a quota error in the middle leaves the previous layout
 * (and every record in it) as it was, and the next open runs the upgrade again.
 *
 * | version | pages store value | since |
 * |---|---|---|
 * | 1 | `{ entries: Map<key, value> }` | the first release |
 * | 2 | a compact page (`page-codec.ts`): stamp and field-name tables, one flat array per record | storage v2 |
 *
 * The page directory (`sys` `['dir', collection]`), the commit sequence and `meta` are the
 * same in both, so 1 → 2 rewrites each page in place (same key), one at a time through a
 * cursor: memory holds one page, whatever the database size.
 */
import type { Value } from '@outpost/core'
import { encodePage } from './page-codec'

/** The layout version this code reads and writes. */
export const DB_VERSION = 2

/** The object stores every version has. */
const STORES = ['pages', 'sys', 'meta'] as const

/** A version-1 page. */
interface PageV1 {
  entries: Map<string, Value>
}

function isPageV1(value: unknown): value is PageV1 {
  return typeof value === 'object' && value !== null && (value as { entries?: unknown }).entries instanceof Map
}

/**
 * The `upgradeneeded` handler: creates the stores on a new database and rewrites the pages
 * of a version-1 one. Runs inside the versionchange transaction `tx`.
 */
export function upgradeDatabase(database: IDBDatabase, tx: IDBTransaction, oldVersion: number): void {
  for (const store of STORES) if (!database.objectStoreNames.contains(store)) database.createObjectStore(store)
  if (oldVersion >= 1 && oldVersion < 2) {
    const cursorRequest = tx.objectStore('pages').openCursor()
    cursorRequest.onsuccess = () => {
      const cursor = cursorRequest.result
      if (cursor === null) return
      const value: unknown = cursor.value
      // A page already in the new layout (never the case for a real version-1 database) is left as is.
      if (isPageV1(value)) cursor.update(encodePage(value.entries))
      cursor.continue()
    }
  }
}
