/**
 * The on-disk format of the LMDB store's record data, recorded under `format` in `sys`,
 * checked when the store opens:
 *
 * - no mark and no map: a new (or record-less) directory, marked {@link SYNC_FORMAT};
 * - no mark but maps: format 1 (records keyed by leaf path in `records`, no `order` or
 *   `pending`, map rows of five fields), migrated in one transaction to format 2: each
 *   record moves to `byKey` and its old key (map id, leaf path, key) becomes its `order`
 *   row, which is exactly format 2's order key; leaf sums are already folded; then on to 3;
 * - format 2 (each change's leaf delta in a `pending` row beside its `log` row, under the
 *   same key), migrated in one transaction to format 3 (one `log` row holds both, see
 *   `lmdb-pending.ts`): every map's pending rows are folded (a trimmed log may have lost
 *   the log rows of some), the `pending` rows removed, and each log row rewritten as a
 *   folded format 3 row around its unchanged entry;
 * - {@link SYNC_FORMAT}: read as is;
 * - anything else (a newer relay wrote it): a `StoreError` that says so, nothing read.
 */
import type { Database, RootDatabase } from 'lmdb'
import { StoreError, addToSum, decode, encodeChecked, type Value } from '@outpost/core'
import { STORED_LIMITS } from './key-bytes'
import { LeafSums, ORDER_VALUE, idBytes, seqKey } from './lmdb-keys'
import { foldedLogRow } from './lmdb-pending'

/** The format this relay reads and writes. */
export const SYNC_FORMAT = 3

const FORMAT_KEY = Buffer.from('format')

/** The databases {@link checkSyncFormat} reads and writes. */
interface FormatDatabases {
  readonly root: RootDatabase<Buffer, Buffer>
  readonly sys: Database<Buffer, Buffer>
  readonly maps: Database<Buffer, Buffer>
  readonly byKey: Database<Buffer, Buffer>
  readonly order: Database<Buffer, Buffer>
  readonly log: Database<Buffer, Buffer>
  readonly leaves: Database<Buffer, Buffer>
}

function formatBytes(format: number): Buffer {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(format, 0)
  return out
}

/** The format the directory holds (1 for an unmarked one with maps), or undefined for a new one. */
export function storedSyncFormat(db: Pick<FormatDatabases, 'sys' | 'maps'>): number | undefined {
  const mark = db.sys.getBinary(FORMAT_KEY)
  if (mark !== undefined) return mark.readUInt32BE(0)
  for (const _ of db.maps.getKeys({ limit: 1 })) return 1
  return undefined
}

/** Checks the directory's format, migrates format 1, marks a new directory; see the module comment. */
export function checkSyncFormat(db: FormatDatabases): void {
  const format = storedSyncFormat(db)
  if (format === SYNC_FORMAT) return
  if (format === undefined) {
    db.root.transactionSync(() => db.sys.putSync(FORMAT_KEY, formatBytes(SYNC_FORMAT)))
    return
  }
  if (format === 1 || format === 2) {
    if (format === 1) migrateFromFormat1(db)
    migrateFromFormat2(db)
    return
  }
  throw new StoreError(
    `The LMDB data directory holds record format ${format}, newer than this relay's format ${SYNC_FORMAT}; run the relay version that wrote it, or point this one at another data directory`,
    { format, supported: SYNC_FORMAT },
  )
}

function migrateFromFormat1(db: FormatDatabases): void {
  const options = { encoding: 'binary', keyEncoding: 'binary' } as const
  const records = db.root.openDB<Buffer, Buffer>('records', options)
  db.root.transactionSync(() => {
    const moved: Buffer[] = []
    for (const { key, value } of records.getRange({})) {
      // Format 1's key is `id(4) + leaf(2) + key`: format 2's order key; its byKey key drops the leaf.
      db.byKey.putSync(Buffer.concat([key.subarray(0, 4), key.subarray(6)]), value)
      db.order.putSync(key, Buffer.from([1]))
      moved.push(key)
    }
    for (const key of moved) records.removeSync(key)
    for (const { key, value } of db.maps.getRange({})) {
      const [id, kind, head, floor, count] = decode(value, STORED_LIMITS) as [number, string, number, number, number]
      const bytes = encodeChecked([id, kind, head, floor, count, head] as Value)
      db.maps.putSync(key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    }
    db.sys.putSync(FORMAT_KEY, formatBytes(2))
  })
}

function migrateFromFormat2(db: FormatDatabases): void {
  const pending = db.root.openDB<Buffer, Buffer>('pending', { encoding: 'binary', keyEncoding: 'binary' })
  db.root.transactionSync(() => {
    for (const { key, value } of db.maps.getRange({})) {
      const row = decode(value, STORED_LIMITS) as [number, string, number, number, number, number]
      const [id, , head, , , folded] = row
      if (head <= folded) continue
      // Format 2's pending row: `flags(1) leaf(2) newHi(4) newLo(4)`, then `oldHi(4) oldLo(4)` or (insert, flag 1) the key body.
      const sums = new LeafSums(db.leaves)
      for (const { value: change } of pending.getRange({ start: seqKey(id, folded + 1), end: seqKey(id, head + 1) })) {
        const sum = sums.of(id, change.readUInt16BE(1))
        addToSum(sum, [change.readUInt32BE(3), change.readUInt32BE(7)], 1)
        if (((change[0] as number) & 1) === 0) addToSum(sum, [change.readUInt32BE(11), change.readUInt32BE(15)], -1)
        else db.order.putSync(Buffer.concat([idBytes(id), change.subarray(1, 3), change.subarray(11)]), ORDER_VALUE)
      }
      sums.write()
      row[5] = head
      const bytes = encodeChecked(row as Value)
      db.maps.putSync(key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    }
    for (const key of [...pending.getKeys({})]) pending.removeSync(key)
    for (const { key, value } of [...db.log.getRange({})]) db.log.putSync(key, foldedLogRow(value))
    db.sys.putSync(FORMAT_KEY, formatBytes(3))
  })
}
