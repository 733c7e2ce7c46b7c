/**
 * The relay's record data ({@link SyncStore}) in the LMDB environment of {@link LmdbStore}.
 *
 * Databases (binary keys and values; format 3, see `lmdb-format.ts`):
 *   - `maps`:    `utf16(map)` → `encode([id, kind, head, floor, count, folded])`
 *   - `byKey`:   `id(4) + key` → `encode([key, seq, state])`
 *   - `order`:   `id(4) + leaf(2) + key` → one byte (scan order, folded)
 *   - `log`:     `id(4) + seq(8)` → the change's leaf delta, then `encode([key, before?])` (see `lmdb-pending.ts`)
 *   - `leaves`:  `id(4) + leaf(2)` → `hi(4) lo(4) count(8)` (folded)
 * A map gets a 4-byte id on its first write (`sys` holds the last one), so record keys do
 * not repeat map names. Keys are UTF-16 code units big-endian; a key too long for LMDB is
 * stored under its first 512 characters plus its SHA-256 (still exact and stable, ordered
 * by that prefix).
 *
 * Records are keyed by `(map, key)`, not by leaf path: keys written together (sequential
 * or time-ordered ids, one map) share B-tree pages, so a commit writes a few pages instead
 * of one per change. What needs leaf order — the Merkle leaf sums and the `(leaf path, key)`
 * scan order — is kept apart and updated lazily: each change's log row carries its leaf
 * delta (a pending row while its sequence number is above the map's `folded`), and a map
 * folds its rows into `leaves` and `order` once it has many (`folded` is the last sequence
 * number folded). Reads add the pending rows: `leafSums` adds their deltas,
 * `scanRecords` merges their new keys into the `order` range.
 *
 * `applyWrites` runs every `decide` inside one LMDB write transaction (batched by lmdb with
 * the other commits of the same event turn: group commit) against reads that see the
 * transaction's own writes, stages the results, and writes only once every decision is
 * made: lmdb keeps what a callback wrote before throwing, so nothing is written before it
 * is certain the call succeeds.
 */
import type { Database, RootDatabase } from 'lmdb'
import { checkSyncFormat } from './lmdb-format'
import { STORED_LIMITS, fromUtf16, leafHex, utf16 } from './key-bytes'
import { LAST_MAP_ID, stored, storedTransient, idBytes, recordKeyBody, type RecordKeySlot, recordKeySlot, keyedBy, orderKey, ORDER_VALUE, withId, recordKey, seqKey, after, type MapRow, readSum, LeafSums, readUint, writeUint } from './lmdb-keys'
import { FOLD_AT, PendingOrderCache, applyPending, logEntry, packLogRow } from './lmdb-pending'
import { StoredPageReader, scanOrderKeys } from './lmdb-scan'
import {
  InternalError,
  InvalidValueError,
  StoreError,
  addToSum,
  assertStoredValue,
  decode,
  entryHash,
  isOutpostError,
  stateDigest,
  type CollectionKind,
  type CrdtState,
  type HashSum,
  type OutpostError,
  type RecordScan,
  type SyncLogEntry,
  type SyncMapInfo,
  type StoredRecords,
  type SyncRecord,
  type Value,
  type WriteOutcome,
  type WriteRequest,
} from '@outpost/core'

const NO_RECORDS: StoredRecords = Object.freeze({ bytes: new Uint8Array(0), offsets: new Uint32Array(1), count: 0 })

/** The LMDB databases of the record data. */
export interface LmdbSyncDatabases {
  readonly root: RootDatabase<Buffer, Buffer>
  readonly sys: Database<Buffer, Buffer>
  readonly maps: Database<Buffer, Buffer>
  readonly byKey: Database<Buffer, Buffer>
  readonly order: Database<Buffer, Buffer>
  readonly log: Database<Buffer, Buffer>
  readonly leaves: Database<Buffer, Buffer>
}

/**
 * Opens the record databases in `root`, after checking (and if needed migrating) their
 * on-disk format: see `lmdb-format.ts`. Throws a `StoreError` for a format it cannot read.
 */
export function openSyncDatabases(root: RootDatabase<Buffer, Buffer>, sys: Database<Buffer, Buffer>): LmdbSyncDatabases {
  const options = { encoding: 'binary', keyEncoding: 'binary' } as const
  const db: LmdbSyncDatabases = {
    root,
    sys,
    maps: root.openDB<Buffer, Buffer>('maps', options),
    byKey: root.openDB<Buffer, Buffer>('byKey', options),
    order: root.openDB<Buffer, Buffer>('order', options),
    log: root.openDB<Buffer, Buffer>('log', options),
    leaves: root.openDB<Buffer, Buffer>('leaves', options),
  }
  checkSyncFormat(db)
  return db
}

/** {@link SyncStore} operations over {@link LmdbSyncDatabases}; see the module comment. */
export class LmdbSync {
  readonly #db: LmdbSyncDatabases
  readonly #pendingOrder = new PendingOrderCache()
  readonly #pages = new StoredPageReader()
  readonly #foldAt: number

  /** `foldAt`: pending rows a map gathers before a write folds them (see `lmdb-pending.ts`). */
  constructor(db: LmdbSyncDatabases, foldAt = FOLD_AT) {
    this.#db = db
    this.#foldAt = Math.max(1, foldAt)
  }

  #map(map: string): MapRow | undefined {
    const bytes = this.#db.maps.getBinary(utf16(map))
    if (bytes === undefined) return undefined
    const [id, kind, head, floor, count, folded] = decode(bytes, STORED_LIMITS) as [number, CollectionKind, number, number, number, number]
    return { id, kind, head, floor, count, folded }
  }

  #putMap(map: string, row: MapRow): void {
    this.#db.maps.putSync(utf16(map), stored([row.id, row.kind, row.head, row.floor, row.count, row.folded]))
  }

  mapInfo(map: string): SyncMapInfo | undefined {
    const row = this.#map(map)
    return row === undefined ? undefined : { kind: row.kind, head: row.head, floor: row.floor, count: row.count }
  }

  syncMaps(): string[] {
    const out: string[] = []
    for (const key of this.#db.maps.getKeys({})) out.push(fromUtf16(key))
    return out.sort()
  }

  #decodeRecord(bytes: Uint8Array): SyncRecord {
    const [key, seq, state] = decode(bytes, STORED_LIMITS) as [string, number, CrdtState]
    return { key, seq, state }
  }

  getRecords(map: string, keys: readonly string[]): (SyncRecord | undefined)[] {
    const row = this.#map(map)
    if (row === undefined) return keys.map(() => undefined)
    return keys.map((key) => {
      const bytes = this.#db.byKey.getBinary(recordKey(row.id, key))
      return bytes === undefined ? undefined : this.#decodeRecord(bytes)
    })
  }

  scanRecords(map: string, scan: RecordScan): SyncRecord[] {
    const page = this.scanStoredRecords(map, scan)
    const out: SyncRecord[] = new Array(page.count)
    for (let i = 0; i < page.count; i++) out[i] = this.#decodeRecord(page.bytes.subarray(page.offsets[i], page.offsets[i + 1]))
    return out
  }

  /** {@link scanRecords} in the records' stored form (`encode([key, seq, state])`, see `lmdb-scan.ts`). */
  scanStoredRecords(map: string, scan: RecordScan): StoredRecords {
    if (!Number.isInteger(scan.limit) || scan.limit < 1) throw new StoreError(`scan limit must be a positive integer, got ${String(scan.limit)}`)
    const row = this.#map(map)
    if (row === undefined) return NO_RECORDS
    return this.#pages.read(this.#db.byKey, scanOrderKeys(this.#db, this.#pendingOrder, row, scan), map)
  }

  readLog(map: string, afterSeq: number, limit: number): SyncLogEntry[] {
    const row = this.#map(map)
    if (row === undefined) return []
    const out: SyncLogEntry[] = []
    for (const { key, value } of this.#db.log.getRange({ start: seqKey(row.id, afterSeq + 1), end: after(idBytes(row.id)), limit })) {
      const [recordKeyName, before] = decode(logEntry(value), STORED_LIMITS) as [string, Value | undefined]
      const seq = Number(key.readBigUInt64BE(4))
      out.push(before === undefined ? { seq, key: recordKeyName } : { seq, key: recordKeyName, before })
    }
    return out
  }

  /** Read inside a write transaction: serialized with writers, so the sums and `head` agree. The folded sums plus the pending deltas. */
  async leafSums(map: string): Promise<{ head: number; leaves: [string, HashSum][] }> {
    return this.#db.root.transaction(() => {
      const row = this.#map(map)
      if (row === undefined) return { head: 0, leaves: [] }
      const sums = new Map<number, HashSum>()
      for (const { key, value } of this.#db.leaves.getRange({ start: idBytes(row.id), end: after(idBytes(row.id)) })) {
        sums.set(key.readUInt16BE(4), readSum(value))
      }
      if (row.head > row.folded) {
        const sumOf = (leaf: number): HashSum => {
          let sum = sums.get(leaf)
          if (sum === undefined) sums.set(leaf, (sum = { hi: 0, lo: 0, count: 0 }))
          return sum
        }
        for (const { value } of this.#db.log.getRange({ start: seqKey(row.id, row.folded + 1), end: seqKey(row.id, row.head + 1) })) applyPending(value, sumOf)
      }
      const leaves: [string, HashSum][] = []
      for (const leaf of [...sums.keys()].sort((a, b) => a - b)) {
        const sum = sums.get(leaf) as HashSum
        if (sum.count > 0) leaves.push([leafHex(leaf), sum])
      }
      return { head: row.head, leaves }
    })
  }

  /** Folds map `row`'s pending rows into `leaves` and `order` (inside the caller's write transaction); the caller writes `row`. */
  #fold(row: MapRow): void {
    if (row.head <= row.folded) return
    const sums = new LeafSums(this.#db.leaves)
    const sumOf = (leaf: number): HashSum => sums.of(row.id, leaf)
    const added: Buffer[] = []
    for (const { value } of this.#db.log.getRange({ start: seqKey(row.id, row.folded + 1), end: seqKey(row.id, row.head + 1) })) {
      const body = applyPending(value, sumOf)
      if (body !== undefined) added.push(withId(row.id, body))
    }
    // In key order: each order page is reached once, from the one before (leaf paths are hashes: in log order, one page per key).
    // Same map id: the leaf (bytes 4-5) decides almost every comparison without a call into Buffer.compare.
    added.sort((a, b) => ((a[4] as number) << 8 | (a[5] as number)) - ((b[4] as number) << 8 | (b[5] as number)) || Buffer.compare(a, b))
    for (const key of added) this.#db.order.putSync(key, ORDER_VALUE)
    sums.write()
    row.folded = row.head
  }

  /** See {@link SyncStore.applyWrites}. */
  async applyWrites(requests: readonly WriteRequest[]): Promise<WriteOutcome[]> {
    // What does not depend on the stored data is done before the transaction: each key's
    // leaf path and record-key body (read and written under the same bytes), computed once.
    const keys = requests.map((request) => recordKeySlot(request.key))
    return this.#db.root.transaction(() => {
      // Decide everything first, against reads that see this transaction; write only then.
      // Rows are this transaction's own copies (changed in place, written once at the end).
      const rows = new Map<string, MapRow>()
      const changed = new Set<string>()
      const staged = new Map<string, Map<string, SyncRecord>>()
      const outcomes: WriteOutcome[] = new Array(requests.length)
      const writes: { row: MapRow; key: RecordKeySlot; record: SyncRecord; previous: SyncRecord | undefined; before: Value | undefined }[] = []
      let lastId = -1
      for (let i = 0; i < requests.length; i++) {
        const request = requests[i] as WriteRequest
        const keyBody = keys[i] as RecordKeySlot
        let row = rows.get(request.map)
        if (row === undefined) {
          const stored = this.#map(request.map)
          if (stored !== undefined) rows.set(request.map, (row = stored))
        }
        let stage = staged.get(request.map)
        if (stage === undefined) staged.set(request.map, (stage = new Map()))
        const current = stage.get(request.key) ?? (row === undefined ? undefined : this.#readRecord(keyedBy(keyBody, row.id)))
        let decision
        try {
          // The store's kind is the truth (another writer may have fixed it a moment ago): refuse this change alone.
          if (row !== undefined && row.kind !== request.kind) throw kindMismatch(request.map, row.kind, request.kind)
          decision = request.decide(current)
          if (decision !== undefined) {
            assertStoredValue(decision.state as unknown as Value, `${request.map}/${request.key.slice(0, 64)}`)
            if (decision.before !== undefined) assertStoredValue(decision.before, `${request.map}/${request.key.slice(0, 64)} (before)`)
          }
        } catch (error) {
          if (!isOutpostError(error)) throw new InternalError(`a write decision failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`)
          outcomes[i] = { status: 'refused', error: error as OutpostError }
          continue
        }
        if (decision === undefined) {
          outcomes[i] = { status: 'unchanged', current }
          continue
        }
        if (row === undefined) {
          if (lastId < 0) lastId = readUint(this.#db.sys.getBinary(LAST_MAP_ID))
          lastId++
          row = { id: lastId, kind: request.kind, head: 0, floor: 0, count: 0, folded: 0 }
          rows.set(request.map, row)
        }
        const seq = ++row.head
        if (current === undefined) row.count++
        changed.add(request.map)
        const record: SyncRecord = { key: request.key, seq, state: decision.state }
        stage.set(request.key, record)
        writes.push({ row, key: keyBody, record, previous: current, before: decision.before })
        outcomes[i] = { status: 'applied', seq, state: decision.state, previous: current }
      }
      if (lastId >= 0) this.#db.sys.putSync(LAST_MAP_ID, writeUint(lastId))
      for (const { row, key, record, previous, before } of writes) {
        // Values are views of the encoder's shared buffer: each putSync copies it into LMDB before the next encode.
        this.#db.byKey.putSync(keyedBy(key, row.id), storedTransient([record.key, record.seq, record.state as unknown as Value]))
        const hash = entryHash(record.key, stateDigest(row.kind, record.state))
        const old = previous === undefined ? undefined : entryHash(record.key, stateDigest(row.kind, previous.state))
        // One row per change: its log entry and its pending leaf delta (see `lmdb-pending.ts`).
        this.#db.log.putSync(seqKey(row.id, record.seq), packLogRow({ leaf: key.leaf, hash, old, body: key.body }, before === undefined ? [record.key] : [record.key, before]))
      }
      for (const map of changed) {
        const row = rows.get(map) as MapRow
        if (row.head - row.folded >= this.#foldAt) this.#fold(row)
        this.#putMap(map, row)
      }
      return outcomes
    })
  }

  #readRecord(key: Buffer): SyncRecord | undefined {
    const bytes = this.#db.byKey.getBinary(key)
    return bytes === undefined ? undefined : this.#decodeRecord(bytes)
  }

  async trimLog(map: string, throughSeq: number): Promise<number> {
    return this.#db.root.transaction(() => {
      const row = this.#map(map)
      if (row === undefined) return 0
      const through = Math.min(throughSeq, row.head)
      const next = { ...row }
      // A pending change's leaf delta lives in its log row: fold it before the row goes.
      if (through > next.folded) this.#fold(next)
      let n = 0
      for (const key of this.#db.log.getKeys({ start: seqKey(row.id, 0), end: seqKey(row.id, through + 1) })) {
        this.#db.log.removeSync(key)
        n++
      }
      if (through > row.floor) next.floor = through
      if (next.floor !== row.floor || next.folded !== row.folded) this.#putMap(map, next)
      return n
    })
  }

  async removeRecords(map: string, keys: readonly string[], still: (record: SyncRecord) => boolean): Promise<string[]> {
    return this.#db.root.transaction(() => {
      const row = this.#map(map)
      if (row === undefined) return []
      const doomed: SyncRecord[] = []
      for (const key of keys) {
        const record = this.#readRecord(recordKey(row.id, key))
        if (record !== undefined && still(record)) doomed.push(record)
      }
      if (doomed.length === 0) return []
      // Fold first: a removed key must not come back from a pending row into `order`.
      this.#fold(row)
      const sums = new LeafSums(this.#db.leaves)
      for (const record of doomed) {
        const key = recordKeyBody(record.key)
        this.#db.byKey.removeSync(withId(row.id, key.body))
        this.#db.order.removeSync(orderKey(row.id, key))
        addToSum(sums.of(row.id, key.leaf), entryHash(record.key, stateDigest(row.kind, record.state)), -1)
      }
      sums.write()
      this.#putMap(map, { ...row, count: row.count - doomed.length })
      return doomed.map((r) => r.key)
    })
  }
}

function kindMismatch(map: string, held: CollectionKind, wanted: CollectionKind): OutpostError {
  return new InvalidValueError(`Map ${map} holds ${held} data; this change is ${wanted}. Use a different map name`, { map, kind: held })
}
