/**
 * The read side of a record scan over the LMDB store (`lmdb-sync.ts`): which records a
 * page holds (the folded `order` range merged with the keys still pending) and their
 * stored bytes, gathered into one buffer.
 *
 * A slice streams every record of a map through here, so the per-record work is kept to
 * the two LMDB reads it needs (the `order` key, the `byKey` value) and no allocation of its
 * own: the `byKey` key is written into one reused buffer, the value is read with
 * `getBinaryFast` (a view of lmdb's shared read buffer, valid until the next read) and
 * copied at once into the page's buffer, which grows by doubling. The records stay in
 * their stored form (`encode([key, seq, state])`): `encodeStoredChanges` puts them into
 * frames as they are, and `scanRecords` decodes them only for callers that want objects.
 */
import type { Database } from 'lmdb'
import { StoreError, type RecordScan, type StoredRecords } from '@outpost/core'
import { after, idBytes, lowerBound, orderKey, recordKeyBody, seqKey, subtreeRange, type MapRow } from './lmdb-keys'
import type { PendingOrderCache } from './lmdb-pending'

/** The databases a scan reads. */
export interface ScanDatabases {
  readonly byKey: Database<Buffer, Buffer>
  readonly order: Database<Buffer, Buffer>
  /** The change log, whose rows past the fold carry the keys still pending. */
  readonly log: Database<Buffer, Buffer>
}

/**
 * The `order` keys (map id, leaf path, key body) of the page `scan` asks for in map `row`:
 * the folded `order` range merged with the new keys still pending (sorted, cached between
 * pages by `pendingOrder`).
 */
export function scanOrderKeys(db: ScanDatabases, pendingOrder: PendingOrderCache, row: MapRow, scan: RecordScan): Buffer[] {
  const range = scan.within === undefined ? { start: idBytes(row.id), end: after(idBytes(row.id)) } : subtreeRange(row.id, scan.within)
  const from = scan.after === undefined ? range.start : Buffer.concat([orderKey(row.id, recordKeyBody(scan.after)), Buffer.from([0])])
  const start = Buffer.compare(from, range.start) < 0 ? range.start : from
  const pending = row.head > row.folded ? pendingOrder.keys(db.log, row.id, row.folded, row.head, (seq) => seqKey(row.id, seq)) : []
  let p = lowerBound(pending, start)
  const keys: Buffer[] = []
  for (const key of db.order.getKeys({ start, end: range.end, limit: scan.limit })) {
    while (p < pending.length && Buffer.compare(pending[p] as Buffer, key) < 0 && keys.length < scan.limit) keys.push(pending[p++] as Buffer)
    if (keys.length >= scan.limit) break
    keys.push(key)
  }
  while (p < pending.length && keys.length < scan.limit && Buffer.compare(pending[p] as Buffer, range.end) < 0) keys.push(pending[p++] as Buffer)
  return keys
}

/** Gathers stored records into one page; one reader is reused from page to page. */
export class StoredPageReader {
  /** The `byKey` key of the record being read (grown when a longer one comes). */
  #key = Buffer.allocUnsafe(1024)
  /** Views of {@link #key} by length: keys of a map mostly share a few lengths, so no view is made per record. */
  #views: Buffer[] = []
  #bytes = Buffer.allocUnsafe(256 * 1024)

  /**
   * The stored records named by `keys` (`order` keys), in order, as one page: the page owns
   * its bytes. Throws a `StoreError` when `order` names a record `byKey` does not hold.
   */
  read(byKey: Database<Buffer, Buffer>, keys: readonly Buffer[], map: string): StoredRecords {
    const offsets = new Uint32Array(keys.length + 1)
    let length = 0
    for (let i = 0; i < keys.length; i++) {
      const order = keys[i] as Buffer
      // The record's key: the order key without its leaf path (bytes 4..5).
      const size = order.length - 2
      if (size > this.#key.length) {
        this.#key = Buffer.allocUnsafe(size * 2)
        this.#views = []
      }
      const key = (this.#views[size] ??= this.#key.subarray(0, size))
      order.copy(key, 0, 0, 4)
      order.copy(key, 4, 6)
      const value = byKey.getBinaryFast(key)
      if (value === undefined) throw new StoreError(`the LMDB store's scan order names a record it does not hold (map ${map}); the data directory is damaged`)
      if (length + value.length > this.#bytes.length) {
        const grown = Buffer.allocUnsafe(Math.max(this.#bytes.length * 2, length + value.length))
        this.#bytes.copy(grown, 0, 0, length)
        this.#bytes = grown
      }
      // lmdb's shared read buffer reports the value's length but spans the whole buffer (Buffer#copy would take all of it): copy through a view of exactly the value.
      this.#bytes.set(new Uint8Array(value.buffer, value.byteOffset, value.length), length)
      length += value.length
      offsets[i + 1] = length
    }
    // One copy per page: the reader's buffer is reused for the next one.
    return { bytes: Uint8Array.prototype.slice.call(this.#bytes, 0, length), offsets, count: keys.length }
  }
}
