/**
 * The relay's record data ({@link SyncStore}) in the LMDB environment of {@link LmdbStore}.
 *
 * Databases (binary keys and values; format 2, see `lmdb-format.ts`):
 *   - `maps`:    `utf16(map)` → `encode([id, kind, head, floor, count, folded])`
 *   - `byKey`:   `id(4) + key` → `encode([key, seq, state])`
 *   - `order`:   `id(4) + leaf(2) + key` → one byte (scan order, folded)
 *   - `log`:     `id(4) + seq(8)` → `encode([key, before?])`
 *   - `leaves`:  `id(4) + leaf(2)` → `hi(4) lo(4) count(8)` (folded)
 *   - `pending`: `id(4) + seq(8)` → the change's leaf delta (see `lmdb-pending.ts`)
 * A map gets a 4-byte id on its first write (`sys` holds the last one), so record keys do
 * not repeat map names. Keys are UTF-16 code units big-endian; a key too long for LMDB is
 * stored under its first 512 characters plus its SHA-256 (still exact and stable, ordered
 * by that prefix).
 *
 * Records are keyed by `(map, key)`, not by leaf path: keys written together (sequential
 * or time-ordered ids, one map) share B-tree pages, so a commit writes a few pages instead
 * of one per change. What needs leaf order — the Merkle leaf sums and the `(leaf path, key)`
 * scan order — is kept apart and updated lazily: each change appends a `pending` row, and a
 * map folds its rows into `leaves` and `order` once it has many (`folded` is the last
 * sequence number folded). Reads add the pending rows: `leafSums` adds their deltas,
 * `scanRecords` merges their new keys into the `order` range.
 *
 * `applyWrites` runs every `decide` inside one LMDB write transaction (batched by lmdb with
 * the other commits of the same event turn: group commit) against reads that see the
 * transaction's own writes, stages the results, and writes only once every decision is
 * made: lmdb keeps what a callback wrote before throwing, so nothing is written before it
 * is certain the call succeeds.
 */
import { createHash } from 'node:crypto'
import type { Database, RootDatabase } from 'lmdb'
import { checkSyncFormat } from './lmdb-format'
import { FOLD_AT, PendingOrderCache, applyPending, packPending } from './lmdb-pending'
import {
  InternalError,
  InvalidValueError,
  SYNC_TREE_DEPTH,
  StoreError,
  addToSum,
  assertStoredValue,
  decode,
  encodeChecked,
  encodeCheckedView,
  entryHash,
  isOutpostError,
  leafPathOf,
  stateDigest,
  type CollectionKind,
  type CrdtState,
  type HashSum,
  type OutpostError,
  type RecordScan,
  type SyncLogEntry,
  type SyncMapInfo,
  type SyncRecord,
  type Value,
  type WriteOutcome,
  type WriteRequest,
} from '@outpost/core'

/** Stored values are decoded without the wire's size limits: they were checked when written. */
const STORED_LIMITS = { maxFrameBytes: Number.MAX_SAFE_INTEGER, maxDepth: 1024, maxElements: Number.MAX_SAFE_INTEGER }
/** Record keys longer than this many UTF-16 units are stored as their first 512 plus a hash. */
const MAX_PLAIN_KEY_UNITS = 940
const LONG_KEY_PREFIX_UNITS = 512
const LAST_MAP_ID = Buffer.from('mapid')

/** `value` encoded for a database, already checked (`assertStoredValue`): no self-check, and a Buffer view of the one copy `encodeChecked` makes. */
function stored(value: Value): Buffer {
  const bytes = encodeChecked(value)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * `value` encoded for a `putSync` inside a write transaction, which copies the bytes into
 * LMDB before it returns: a view of the encoder's shared buffer, valid until the next encode
 * (no copy, no allocation per value: the write path's values feed the GC otherwise).
 */
function storedTransient(value: Value): Buffer {
  // The databases are typed for Buffer values; lmdb takes any Uint8Array (msgpackr hands out Buffers in Node).
  return encodeCheckedView(value) as Buffer
}

function utf16(value: string): Buffer {
  return Buffer.from(value, 'utf16le').swap16()
}

function fromUtf16(bytes: Buffer): string {
  return Buffer.from(bytes).swap16().toString('utf16le')
}

/** The leaf path of `key` as a number (SYNC_TREE_DEPTH hex nibbles). */
function leafOf(key: string): number {
  return Number.parseInt(leafPathOf(key, SYNC_TREE_DEPTH), 16)
}

function idBytes(id: number): Buffer {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(id, 0)
  return out
}

/** A record key without its map id: the key's bytes (see the module comment), and its leaf path. */
interface RecordKeyBody {
  readonly body: Buffer
  /** The leaf path as a number. */
  readonly leaf: number
}

function recordKeyBody(key: string): RecordKeyBody {
  const plain = utf16(key)
  const body = key.length <= MAX_PLAIN_KEY_UNITS ? plain : Buffer.concat([plain.subarray(0, LONG_KEY_PREFIX_UNITS * 2), createHash('sha256').update(plain).digest()])
  return { body, leaf: leafOf(key) }
}

/** A record key with room for its map id: `key` is `id(4) + body` once {@link keyedBy} wrote the id, `body` is a view of it. */
interface RecordKeySlot extends RecordKeyBody {
  readonly key: Buffer
}

/** {@link recordKeyBody} in a buffer with 4 bytes in front for the map id (not known before the transaction): no copy per key. */
function recordKeySlot(key: string): RecordKeySlot {
  if (key.length > MAX_PLAIN_KEY_UNITS) {
    const long = recordKeyBody(key)
    const out = Buffer.allocUnsafe(4 + long.body.length)
    long.body.copy(out, 4)
    return { key: out, body: out.subarray(4), leaf: long.leaf }
  }
  const out = Buffer.allocUnsafe(4 + key.length * 2)
  const body = out.subarray(4)
  body.write(key, 'utf16le')
  body.swap16()
  return { key: out, body, leaf: leafOf(key) }
}

/** The record key of `slot` under map `id` (written in place: the slot's key buffer is its own). */
function keyedBy(slot: RecordKeySlot, id: number): Buffer {
  const key = slot.key
  // Big-endian by hand: a map id is below 2^32 (writeUInt32BE's range checks cost more than the write).
  key[0] = id >>> 24
  key[1] = (id >>> 16) & 0xff
  key[2] = (id >>> 8) & 0xff
  key[3] = id & 0xff
  return key
}

/** The `order` key of a record: map id, leaf path, key body. */
function orderKey(id: number, key: RecordKeyBody): Buffer {
  const out = Buffer.allocUnsafe(6 + key.body.length)
  out.writeUInt32BE(id, 0)
  out.writeUInt16BE(key.leaf, 4)
  key.body.copy(out, 6)
  return out
}

/** The value of an `order` row: LMDB wants one, the key says everything. */
const ORDER_VALUE = Buffer.from([1])

/** `body` behind the 4-byte map id. */
function withId(id: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length)
  out.writeUInt32BE(id, 0)
  body.copy(out, 4)
  return out
}

function recordKey(id: number, key: string): Buffer {
  return withId(id, recordKeyBody(key).body)
}

function seqKey(id: number, seq: number): Buffer {
  const out = Buffer.allocUnsafe(12)
  out.writeUInt32BE(id, 0)
  // The sequence number as two 32-bit halves (it stays below 2^53): no BigInt per key.
  out.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 4)
  out.writeUInt32BE(seq >>> 0, 8)
  return out
}

/** The smallest key greater than every key that starts with `prefix`. */
function after(prefix: Buffer): Buffer {
  const out = Buffer.from(prefix)
  for (let i = out.length - 1; i >= 0; i--) {
    if ((out[i] as number) < 0xff) {
      out[i] = (out[i] as number) + 1
      return out.subarray(0, i + 1)
    }
  }
  return Buffer.concat([prefix, Buffer.from([0xff])])
}

/** Key prefix of the leaves under a hex subtree path (an odd number of nibbles covers a byte range). */
function subtreeRange(id: number, within: string): { start: Buffer; end: Buffer } {
  const head = idBytes(id)
  const padded = within.padEnd(SYNC_TREE_DEPTH, '0')
  const low = Buffer.from(padded, 'hex')
  const high = Buffer.from(within.padEnd(SYNC_TREE_DEPTH, 'f'), 'hex')
  return { start: Buffer.concat([head, low]), end: after(Buffer.concat([head, high])) }
}

interface MapRow {
  id: number
  kind: CollectionKind
  head: number
  floor: number
  count: number
  /** Changes up to this sequence number are folded into `leaves` and `order`; later ones are `pending` rows. */
  folded: number
}

function readSum(bytes: Buffer | undefined): HashSum {
  if (bytes === undefined) return { hi: 0, lo: 0, count: 0 }
  // The count as two 32-bit halves (it stays below 2^53): no BigInt per leaf row.
  return { hi: bytes.readUInt32BE(0), lo: bytes.readUInt32BE(4), count: bytes.readUInt32BE(8) * 0x1_0000_0000 + bytes.readUInt32BE(12) }
}

function writeSum(sum: HashSum): Buffer {
  const out = Buffer.allocUnsafe(16)
  out.writeUInt32BE(sum.hi, 0)
  out.writeUInt32BE(sum.lo, 4)
  out.writeUInt32BE(Math.floor(sum.count / 0x1_0000_0000), 8)
  out.writeUInt32BE(sum.count >>> 0, 12)
  return out
}

/** The LMDB databases of the record data. */
export interface LmdbSyncDatabases {
  readonly root: RootDatabase<Buffer, Buffer>
  readonly sys: Database<Buffer, Buffer>
  readonly maps: Database<Buffer, Buffer>
  readonly byKey: Database<Buffer, Buffer>
  readonly order: Database<Buffer, Buffer>
  readonly log: Database<Buffer, Buffer>
  readonly leaves: Database<Buffer, Buffer>
  readonly pending: Database<Buffer, Buffer>
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
    pending: root.openDB<Buffer, Buffer>('pending', options),
  }
  checkSyncFormat(db)
  return db
}

/** {@link SyncStore} operations over {@link LmdbSyncDatabases}; see the module comment. */
export class LmdbSync {
  readonly #db: LmdbSyncDatabases
  readonly #pendingOrder = new PendingOrderCache()
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

  #decodeRecord(bytes: Buffer): SyncRecord {
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
    if (!Number.isInteger(scan.limit) || scan.limit < 1) throw new StoreError(`scan limit must be a positive integer, got ${String(scan.limit)}`)
    const row = this.#map(map)
    if (row === undefined) return []
    const range = scan.within === undefined ? { start: idBytes(row.id), end: after(idBytes(row.id)) } : subtreeRange(row.id, scan.within)
    const from = scan.after === undefined ? range.start : Buffer.concat([orderKey(row.id, recordKeyBody(scan.after)), Buffer.from([0])])
    const start = Buffer.compare(from, range.start) < 0 ? range.start : from
    // Folded keys from `order`, merged with the new keys still pending (sorted, cached between pages).
    const pending = row.head > row.folded ? this.#pendingOrder.keys(this.#db.pending, row.id, row.folded, row.head, (seq) => seqKey(row.id, seq)) : []
    let p = lowerBound(pending, start)
    const keys: Buffer[] = []
    for (const key of this.#db.order.getKeys({ start, end: range.end, limit: scan.limit })) {
      while (p < pending.length && Buffer.compare(pending[p] as Buffer, key) < 0 && keys.length < scan.limit) keys.push(pending[p++] as Buffer)
      if (keys.length >= scan.limit) break
      keys.push(key)
    }
    while (p < pending.length && keys.length < scan.limit && Buffer.compare(pending[p] as Buffer, range.end) < 0) keys.push(pending[p++] as Buffer)
    const out: SyncRecord[] = []
    for (const key of keys) {
      // The record's key: the order key without its leaf path (one allocation, no intermediate views: this runs per record of a slice).
      const recordKeyBytes = Buffer.allocUnsafe(key.length - 2)
      key.copy(recordKeyBytes, 0, 0, 4)
      key.copy(recordKeyBytes, 4, 6)
      const bytes = this.#db.byKey.getBinary(recordKeyBytes)
      if (bytes === undefined) throw new StoreError(`the LMDB store's scan order names a record it does not hold (map ${map}); the data directory is damaged`)
      out.push(this.#decodeRecord(bytes))
    }
    return out
  }

  readLog(map: string, afterSeq: number, limit: number): SyncLogEntry[] {
    const row = this.#map(map)
    if (row === undefined) return []
    const out: SyncLogEntry[] = []
    for (const { key, value } of this.#db.log.getRange({ start: seqKey(row.id, afterSeq + 1), end: after(idBytes(row.id)), limit })) {
      const [recordKeyName, before] = decode(value, STORED_LIMITS) as [string, Value | undefined]
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
        for (const { value } of this.#db.pending.getRange({ start: seqKey(row.id, row.folded + 1), end: seqKey(row.id, row.head + 1) })) applyPending(value, sumOf)
      }
      const leaves: [string, HashSum][] = []
      for (const leaf of [...sums.keys()].sort((a, b) => a - b)) {
        const sum = sums.get(leaf) as HashSum
        if (sum.count > 0) leaves.push([leaf.toString(16).padStart(SYNC_TREE_DEPTH, '0'), sum])
      }
      return { head: row.head, leaves }
    })
  }

  /** Folds map `row`'s pending rows into `leaves` and `order` (inside the caller's write transaction); the caller writes `row`. */
  #fold(row: MapRow): void {
    if (row.head <= row.folded) return
    const sums = new LeafSums(this.#db.leaves)
    const done: Buffer[] = []
    for (const { key, value } of this.#db.pending.getRange({ start: seqKey(row.id, row.folded + 1), end: seqKey(row.id, row.head + 1) })) {
      const body = applyPending(value, (leaf) => sums.of(row.id, leaf))
      if (body !== undefined) this.#db.order.putSync(withId(row.id, body), ORDER_VALUE)
      done.push(key)
    }
    for (const key of done) this.#db.pending.removeSync(key)
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
        const logKey = seqKey(row.id, record.seq)
        this.#db.log.putSync(logKey, storedTransient(before === undefined ? [record.key] : [record.key, before]))
        const hash = entryHash(record.key, stateDigest(row.kind, record.state))
        const old = previous === undefined ? undefined : entryHash(record.key, stateDigest(row.kind, previous.state))
        this.#db.pending.putSync(logKey, packPending({ leaf: key.leaf, hash, old, body: key.body }))
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
      let n = 0
      for (const key of this.#db.log.getKeys({ start: seqKey(row.id, 0), end: seqKey(row.id, through + 1) })) {
        this.#db.log.removeSync(key)
        n++
      }
      if (through > row.floor) this.#putMap(map, { ...row, floor: through })
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

/**
 * The Merkle leaf sums one transaction changes: each leaf row read once, changed in memory
 * and written (or removed when empty) once at the end, however many of its keys changed.
 */
class LeafSums {
  readonly #rows = new Map<number, { key: Buffer; sum: HashSum }>()
  readonly #leaves: Database<Buffer, Buffer>

  constructor(leaves: Database<Buffer, Buffer>) {
    this.#leaves = leaves
  }

  /** The sum of map `id`'s 16-bit leaf `leaf`, to change in place. */
  of(id: number, leaf: number): HashSum {
    // A map id below 2^32 and a 16-bit leaf: one exact number per leaf row.
    const slot = id * 0x10000 + leaf
    let entry = this.#rows.get(slot)
    if (entry === undefined) {
      const key = Buffer.allocUnsafe(6)
      key.writeUInt32BE(id, 0)
      key.writeUInt16BE(leaf, 4)
      entry = { key, sum: readSum(this.#leaves.getBinary(key)) }
      this.#rows.set(slot, entry)
    }
    return entry.sum
  }

  /** Writes every changed sum (inside the caller's transaction). */
  write(): void {
    for (const { key, sum } of this.#rows.values()) {
      if (sum.count === 0) this.#leaves.removeSync(key)
      else this.#leaves.putSync(key, writeSum(sum))
    }
  }
}

/** The index of the first key in sorted `keys` not below `key`. */
function lowerBound(keys: readonly Buffer[], key: Buffer): number {
  let low = 0
  let high = keys.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (Buffer.compare(keys[middle] as Buffer, key) < 0) low = middle + 1
    else high = middle
  }
  return low
}

function kindMismatch(map: string, held: CollectionKind, wanted: CollectionKind): OutpostError {
  return new InvalidValueError(`Map ${map} holds ${held} data; this change is ${wanted}. Use a different map name`, { map, kind: held })
}

function readUint(bytes: Buffer | undefined): number {
  return bytes === undefined ? 0 : Number(bytes.readBigUInt64BE(0))
}

function writeUint(n: number): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeBigUInt64BE(BigInt(n), 0)
  return out
}
