/**
 * The relay's record data ({@link SyncStore}) in the LMDB environment of {@link LmdbStore}.
 *
 * Databases (binary keys and values):
 *   - `maps`:    `utf16(map)` → `encode([id, kind, head, floor, count])`
 *   - `records`: `id(4) + leaf(2) + key` → `encode([key, seq, state])`
 *   - `log`:     `id(4) + seq(8)` → `encode([key, before?])`
 *   - `leaves`:  `id(4) + leaf(2)` → `hi(4) lo(4) count(8)`
 * A map gets a 4-byte id on its first write (`sys` holds the last one), so record keys do
 * not repeat map names. Keys are UTF-16 code units big-endian behind the leaf path's two
 * bytes, so a range scan is `(leaf path, key)` order and a Merkle subtree is one range;
 * a key too long for LMDB is stored under its first 512 characters plus its SHA-256 (still
 * exact and stable, ordered by that prefix).
 *
 * `applyWrites` runs every `decide` inside one LMDB write transaction (batched by lmdb with
 * the other commits of the same event turn: group commit) against reads that see the
 * transaction's own writes, stages the results, and writes only once every decision is
 * made: lmdb keeps what a callback wrote before throwing, so nothing is written before it
 * is certain the call succeeds.
 */
import { createHash } from 'node:crypto'
import type { Database, RootDatabase } from 'lmdb'
import {
  InternalError,
  InvalidValueError,
  SYNC_TREE_DEPTH,
  StoreError,
  addToSum,
  assertStoredValue,
  decode,
  encode,
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

function utf16(value: string): Buffer {
  return Buffer.from(value, 'utf16le').swap16()
}

function fromUtf16(bytes: Buffer): string {
  return Buffer.from(bytes).swap16().toString('utf16le')
}

function leafBytes(key: string): Buffer {
  return Buffer.from(leafPathOf(key, SYNC_TREE_DEPTH), 'hex')
}

function idBytes(id: number): Buffer {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(id, 0)
  return out
}

function recordKey(id: number, key: string): Buffer {
  const plain = utf16(key)
  const body = key.length <= MAX_PLAIN_KEY_UNITS ? plain : Buffer.concat([plain.subarray(0, LONG_KEY_PREFIX_UNITS * 2), createHash('sha256').update(plain).digest()])
  return Buffer.concat([idBytes(id), leafBytes(key), body])
}

function seqKey(id: number, seq: number): Buffer {
  const out = Buffer.allocUnsafe(12)
  out.writeUInt32BE(id, 0)
  out.writeBigUInt64BE(BigInt(seq), 4)
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
}

function readSum(bytes: Buffer | undefined): HashSum {
  if (bytes === undefined) return { hi: 0, lo: 0, count: 0 }
  return { hi: bytes.readUInt32BE(0), lo: bytes.readUInt32BE(4), count: Number(bytes.readBigUInt64BE(8)) }
}

function writeSum(sum: HashSum): Buffer {
  const out = Buffer.allocUnsafe(16)
  out.writeUInt32BE(sum.hi, 0)
  out.writeUInt32BE(sum.lo, 4)
  out.writeBigUInt64BE(BigInt(sum.count), 8)
  return out
}

/** The LMDB databases of the record data. */
export interface LmdbSyncDatabases {
  readonly root: RootDatabase<Buffer, Buffer>
  readonly sys: Database<Buffer, Buffer>
  readonly maps: Database<Buffer, Buffer>
  readonly records: Database<Buffer, Buffer>
  readonly log: Database<Buffer, Buffer>
  readonly leaves: Database<Buffer, Buffer>
}

/** Opens the record databases in `root`. */
export function openSyncDatabases(root: RootDatabase<Buffer, Buffer>, sys: Database<Buffer, Buffer>): LmdbSyncDatabases {
  const options = { encoding: 'binary', keyEncoding: 'binary' } as const
  return {
    root,
    sys,
    maps: root.openDB<Buffer, Buffer>('maps', options),
    records: root.openDB<Buffer, Buffer>('records', options),
    log: root.openDB<Buffer, Buffer>('log', options),
    leaves: root.openDB<Buffer, Buffer>('leaves', options),
  }
}

/** {@link SyncStore} operations over {@link LmdbSyncDatabases}; see the module comment. */
export class LmdbSync {
  readonly #db: LmdbSyncDatabases

  constructor(db: LmdbSyncDatabases) {
    this.#db = db
  }

  #map(map: string): MapRow | undefined {
    const bytes = this.#db.maps.getBinary(utf16(map))
    if (bytes === undefined) return undefined
    const [id, kind, head, floor, count] = decode(bytes, STORED_LIMITS) as [number, CollectionKind, number, number, number]
    return { id, kind, head, floor, count }
  }

  #putMap(map: string, row: MapRow): void {
    this.#db.maps.putSync(utf16(map), Buffer.from(encode([row.id, row.kind, row.head, row.floor, row.count])))
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
      const bytes = this.#db.records.getBinary(recordKey(row.id, key))
      return bytes === undefined ? undefined : this.#decodeRecord(bytes)
    })
  }

  scanRecords(map: string, scan: RecordScan): SyncRecord[] {
    if (!Number.isInteger(scan.limit) || scan.limit < 1) throw new StoreError(`scan limit must be a positive integer, got ${String(scan.limit)}`)
    const row = this.#map(map)
    if (row === undefined) return []
    const range = scan.within === undefined ? { start: idBytes(row.id), end: after(idBytes(row.id)) } : subtreeRange(row.id, scan.within)
    const start = scan.after === undefined ? range.start : Buffer.concat([recordKey(row.id, scan.after), Buffer.from([0])])
    const out: SyncRecord[] = []
    for (const { value } of this.#db.records.getRange({ start: Buffer.compare(start, range.start) < 0 ? range.start : start, end: range.end, limit: scan.limit })) {
      out.push(this.#decodeRecord(value))
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

  /** Read inside a write transaction: serialized with writers, so the sums and `head` agree. */
  async leafSums(map: string): Promise<{ head: number; leaves: [string, HashSum][] }> {
    return this.#db.root.transaction(() => {
      const row = this.#map(map)
      if (row === undefined) return { head: 0, leaves: [] }
      const leaves: [string, HashSum][] = []
      for (const { key, value } of this.#db.leaves.getRange({ start: idBytes(row.id), end: after(idBytes(row.id)) })) {
        leaves.push([key.subarray(4).toString('hex'), readSum(value)])
      }
      return { head: row.head, leaves }
    })
  }

  /** See {@link SyncStore.applyWrites}. */
  async applyWrites(requests: readonly WriteRequest[]): Promise<WriteOutcome[]> {
    return this.#db.root.transaction(() => {
      // Decide everything first, against reads that see this transaction; write only then.
      const rows = new Map<string, MapRow>()
      const staged = new Map<string, SyncRecord>()
      const outcomes: WriteOutcome[] = []
      const writes: { row: MapRow; record: SyncRecord; previous: SyncRecord | undefined; encoded: Buffer; before: Value | undefined }[] = []
      let lastId = -1
      for (const request of requests) {
        let row = rows.get(request.map) ?? this.#map(request.map)
        const stageKey = `${request.map}\u0000${request.key}`
        const current = staged.get(stageKey) ?? (row === undefined ? undefined : this.#readRecord(row.id, request.key))
        let decision
        try {
          // The store's kind is the truth (another writer may have fixed it a moment ago): refuse this change alone.
          if (row !== undefined && row.kind !== request.kind) throw kindMismatch(request.map, row.kind, request.kind)
          decision = request.decide(current)
          if (decision !== undefined) assertStoredValue(decision.state as unknown as Value, `${request.map}/${request.key.slice(0, 64)}`)
        } catch (error) {
          if (!isOutpostError(error)) throw new InternalError(`a write decision failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`)
          outcomes.push({ status: 'refused', error: error as OutpostError })
          continue
        }
        if (decision === undefined) {
          outcomes.push({ status: 'unchanged', current })
          continue
        }
        if (row === undefined) {
          if (lastId < 0) lastId = readUint(this.#db.sys.getBinary(LAST_MAP_ID))
          lastId++
          row = { id: lastId, kind: request.kind, head: 0, floor: 0, count: 0 }
        }
        const seq = row.head + 1
        row = { ...row, head: seq, count: row.count + (current === undefined ? 1 : 0) }
        rows.set(request.map, row)
        const record: SyncRecord = { key: request.key, seq, state: decision.state }
        staged.set(stageKey, record)
        writes.push({ row, record, previous: current, encoded: Buffer.from(encode([request.key, seq, decision.state as unknown as Value])), before: decision.before })
        outcomes.push({ status: 'applied', seq, state: decision.state, previous: current })
      }
      if (lastId >= 0) this.#db.sys.putSync(LAST_MAP_ID, writeUint(lastId))
      const sums = new Map<string, { key: Buffer; sum: HashSum }>()
      for (const [map, row] of rows) this.#putMap(map, row)
      for (const { row, record, previous, encoded, before } of writes) {
        this.#db.records.putSync(recordKey(row.id, record.key), encoded)
        this.#db.log.putSync(seqKey(row.id, record.seq), Buffer.from(encode(before === undefined ? [record.key] : [record.key, before])))
        const leafKey = Buffer.concat([idBytes(row.id), leafBytes(record.key)])
        const id = leafKey.toString('hex')
        let entry = sums.get(id)
        if (entry === undefined) {
          entry = { key: leafKey, sum: readSum(this.#db.leaves.getBinary(leafKey)) }
          sums.set(id, entry)
        }
        if (previous !== undefined) addToSum(entry.sum, entryHash(record.key, stateDigest(row.kind, previous.state)), -1)
        addToSum(entry.sum, entryHash(record.key, stateDigest(row.kind, record.state)), 1)
      }
      for (const { key, sum } of sums.values()) {
        if (sum.count === 0) this.#db.leaves.removeSync(key)
        else this.#db.leaves.putSync(key, writeSum(sum))
      }
      return outcomes
    })
  }

  #readRecord(id: number, key: string): SyncRecord | undefined {
    const bytes = this.#db.records.getBinary(recordKey(id, key))
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
        const record = this.#readRecord(row.id, key)
        if (record !== undefined && still(record)) doomed.push(record)
      }
      const sums = new Map<string, { key: Buffer; sum: HashSum }>()
      for (const record of doomed) {
        this.#db.records.removeSync(recordKey(row.id, record.key))
        const leafKey = Buffer.concat([idBytes(row.id), leafBytes(record.key)])
        const id = leafKey.toString('hex')
        let entry = sums.get(id)
        if (entry === undefined) {
          entry = { key: leafKey, sum: readSum(this.#db.leaves.getBinary(leafKey)) }
          sums.set(id, entry)
        }
        addToSum(entry.sum, entryHash(record.key, stateDigest(row.kind, record.state)), -1)
      }
      for (const { key, sum } of sums.values()) {
        if (sum.count === 0) this.#db.leaves.removeSync(key)
        else this.#db.leaves.putSync(key, writeSum(sum))
      }
      if (doomed.length > 0) this.#putMap(map, { ...row, count: row.count - doomed.length })
      return doomed.map((r) => r.key)
    })
  }
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
