/**
 * The relay's embedded store: core's {@link Store} on LMDB (`lmdb`), ACID and durable
 * with no external service.
 *
 * Layout: one environment with three databases, all with binary keys and values (plus
 * the record data's, described in `lmdb-sync.ts`; its format is checked on open).
 *   - `data`: `[collection, key] → [key length][key as UTF-16][encode(value)]`
 *   - `meta`: `key → encode(value)`
 *   - `sys`:  `"seq" → commit sequence`, `"n" + collection → entry count`
 * Values go through core's msgpack codec (not lmdb's own msgpackr setup), so `__proto__`
 * keys, bigints, dates and bytes round-trip exactly as they do on the wire.
 *
 * Keys are UTF-16 code units, big-endian, behind a length-prefixed collection name: exact
 * for every JS string (lone surrogates included, which UTF-8 would mangle), ordered by
 * code unit within a collection. LMDB caps keys near 2 KB, so a longer key is stored under
 * its first {@link KEY_PREFIX_BYTES} bytes plus its SHA-256: still exact (the value holds
 * the real key), still a stable order, just not the string order for such keys.
 *
 * Durability: `commit` is one LMDB write transaction and resolves only after it is
 * flushed (`overlappingSync: false`, sync on). Commits issued in the same event turn are
 * batched by lmdb into one transaction: group commit, one fsync for many acks.
 */
import { createHash } from 'node:crypto'
import { open, type Database, type RootDatabase } from 'lmdb'
import {
  InvalidKeyError,
  StoreClosedError,
  StoreError,
  assertStoredValue,
  decode,
  encode,
  isOutpostError,
  type HashSum,
  type RecordScan,
  type ScanOptions,
  type Store,
  type StoreBatch,
  type StoreEntry,
  type StoredRecords,
  type SyncLogEntry,
  type SyncMapInfo,
  type SyncRecord,
  type SyncStore,
  type Value,
  type WriteOutcome,
  type WriteRequest,
} from '@outpost/core'
import { STORED_LIMITS, fromUtf16, utf16 } from './key-bytes'
import { LmdbSync, openSyncDatabases } from './lmdb-sync'

/** The longest key kept verbatim (bytes); LMDB's default maximum key size is 1978 bytes. */
const MAX_PLAIN_KEY_BYTES = 1900
/** Bytes of a long key kept before its hash. */
const KEY_PREFIX_BYTES = 1024

/** Options of {@link LmdbStore.open}. */
export interface LmdbStoreOptions {
  /** Directory of the LMDB environment (created if missing). */
  readonly path: string
  /** Upper bound of the memory map (bytes); LMDB grows the file up to it. */
  readonly mapSize?: number
  /**
   * How many pending leaf-sum rows a map gathers before they are folded (default
   * `FOLD_AT` of `lmdb-pending.ts`). Tests set it low to exercise folds.
   * @internal
   */
  readonly foldAt?: number
}

const prefixes = new Map<string, Buffer>()

/** Longest collection name (UTF-16 units): the protocol's map names plus the relay's `m:` prefix, with room to spare. */
const MAX_COLLECTION_LENGTH = 512

function collectionPrefix(collection: string): Buffer {
  let prefix = prefixes.get(collection)
  if (prefix === undefined) {
    if (collection.length > MAX_COLLECTION_LENGTH) {
      throw new InvalidKeyError(`Collection names are limited to ${MAX_COLLECTION_LENGTH} characters (got ${collection.length}); use a shorter name`)
    }
    const head = Buffer.allocUnsafe(2)
    head.writeUInt16BE(collection.length, 0)
    prefix = Buffer.concat([head, utf16(collection)])
    // A small cache: the relay writes to few maps, and a flood of names only costs recomputation.
    if (prefixes.size >= 1_000) prefixes.clear()
    prefixes.set(collection, prefix)
  }
  return prefix
}

function keyBytes(prefix: Buffer, key: string): Buffer {
  const plain = utf16(key)
  if (prefix.length + plain.length <= MAX_PLAIN_KEY_BYTES) return Buffer.concat([prefix, plain])
  const digest = createHash('sha256').update(plain).digest()
  return Buffer.concat([prefix, plain.subarray(0, KEY_PREFIX_BYTES), digest])
}

/** The smallest key greater than every key that starts with `prefix` (drop trailing 0xff bytes, increment the last). */
function rangeEnd(prefix: Buffer): Buffer {
  let end = prefix.length
  while (end > 0 && prefix[end - 1] === 0xff) end--
  // The 2-byte length header is at most 0x0200 (MAX_COLLECTION_LENGTH), so its first byte is below 0xff.
  const out = Buffer.from(prefix.subarray(0, end))
  out[end - 1] = (out[end - 1] as number) + 1
  return out
}

/** A stored entry: the exact key (UTF-16, so even lone surrogates survive), then the encoded value. */
function packEntry(key: string, value: Value): Buffer {
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(key.length, 0)
  return Buffer.concat([head, utf16(key), encode(value)])
}

function unpackEntry(bytes: Buffer): [string, Value] {
  const length = bytes.readUInt32BE(0)
  const key = fromUtf16(bytes.subarray(4, 4 + length * 2))
  return [key, decode(bytes.subarray(4 + length * 2), STORED_LIMITS) as Value]
}

const SEQ_KEY = Buffer.from('seq')

/** Meta keys get a one-byte prefix: LMDB refuses the empty key `""`. */
const META_PREFIX = Buffer.from('k')

function metaKey(key: string): Buffer {
  return keyBytes(META_PREFIX, key)
}

function countKey(collection: string): Buffer {
  return Buffer.concat([Buffer.from('n'), utf16(collection)])
}

function readCount(bytes: Buffer | undefined): number {
  return bytes === undefined ? 0 : Number(bytes.readBigUInt64BE(0))
}

function writeCount(n: number): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeBigUInt64BE(BigInt(n), 0)
  return out
}

/** core's {@link Store} and {@link SyncStore} on LMDB (the record data lives in `lmdb-sync.ts`). Open with {@link LmdbStore.open}. */
export class LmdbStore implements Store, SyncStore {
  /** Always `'lmdb'`. */
  readonly name = 'lmdb'
  /**
   * `applyWrites` calls run in the order they are made, each seeing the ones before (lmdb
   * queues them on its one writer), and those made while a commit syncs share the next one:
   * the relay's write queue keeps several in flight (see `sync/write-queue.ts`).
   */
  readonly pipelinedWrites = true
  readonly #root: RootDatabase<Buffer, Buffer>
  readonly #data: Database<Buffer, Buffer>
  readonly #meta: Database<Buffer, Buffer>
  readonly #sys: Database<Buffer, Buffer>
  readonly #sync: LmdbSync
  #closed = false
  #closing: Promise<void> | undefined

  private constructor(root: RootDatabase<Buffer, Buffer>, foldAt: number | undefined) {
    this.#root = root
    const dbOptions = { encoding: 'binary', keyEncoding: 'binary' } as const
    this.#data = root.openDB<Buffer, Buffer>('data', dbOptions)
    this.#meta = root.openDB<Buffer, Buffer>('meta', dbOptions)
    this.#sys = root.openDB<Buffer, Buffer>('sys', dbOptions)
    this.#sync = new LmdbSync(openSyncDatabases(root, this.#sys), foldAt)
  }

  /** Opens (or creates) the store at `options.path`. */
  static open(options: LmdbStoreOptions): LmdbStore {
    try {
      const root = open<Buffer, Buffer>({
        path: options.path,
        // lmdb guesses "a file, not a directory" when the name has an extension (`/tmp/tmp.Ab12`, `outpost.data`).
        noSubdir: false,
        encoding: 'binary',
        keyEncoding: 'binary',
        maxDbs: 16,
        // Resolve commits only once they are on disk: an ack must survive a power cut.
        overlappingSync: false,
        noSync: false,
        ...(options.mapSize === undefined ? {} : { mapSize: options.mapSize }),
      })
      try {
        return new LmdbStore(root, options.foldAt)
      } catch (error) {
        // The directory opened but its data cannot be used as is (e.g. a newer format): say that, not "not writable".
        void root.close()
        throw error
      }
    } catch (error) {
      if (isOutpostError(error)) throw error
      throw new StoreError(`Cannot open the LMDB store at ${options.path}: ${error instanceof Error ? error.message : String(error)}; check that the directory is writable and not used by another process`, { path: options.path }, { cause: error })
    }
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError('The LMDB store is closed; open a new one')
  }

  /** The value under `key`, or undefined. */
  async get(collection: string, key: string): Promise<Value | undefined> {
    this.#check()
    return this.#read(collectionPrefix(collection), key)
  }

  #read(prefix: Buffer, key: string): Value | undefined {
    const bytes = this.#data.getBinary(keyBytes(prefix, key))
    if (bytes === undefined) return undefined
    return unpackEntry(bytes)[1]
  }

  /** The values under `keys`, in order. */
  async getMany(collection: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    this.#check()
    const prefix = collectionPrefix(collection)
    return keys.map((key) => this.#read(prefix, key))
  }

  /** A page of `collection` in key order, strictly after `options.after`. */
  async scan(collection: string, options: ScanOptions = {}): Promise<StoreEntry[]> {
    this.#check()
    const prefix = collectionPrefix(collection)
    // Appending a zero byte gives the smallest key strictly greater than `after`'s.
    const start = options.after === undefined ? prefix : Buffer.concat([keyBytes(prefix, options.after), Buffer.from([0])])
    const out: StoreEntry[] = []
    const limit = options.limit
    for (const { value } of this.#data.getRange({ start, end: rangeEnd(prefix), ...(limit === undefined ? {} : { limit }) })) {
      const [key, stored] = unpackEntry(value)
      out.push({ collection, key, value: stored })
    }
    return out
  }

  /** How many entries `collection` holds. */
  async count(collection: string): Promise<number> {
    this.#check()
    return readCount(this.#sys.getBinary(countKey(collection)))
  }

  /** Names of non-empty collections. */
  async collections(): Promise<string[]> {
    this.#check()
    const out: string[] = []
    for (const { key, value } of this.#sys.getRange({ start: Buffer.from('n'), end: Buffer.from('o') })) {
      if (readCount(value) === 0) continue
      out.push(fromUtf16(key.subarray(1)))
    }
    return out
  }

  /** Applies `batch` in one durable transaction (batched with concurrent commits). */
  async commit(batch: StoreBatch): Promise<{ readonly seq: number }> {
    this.#check()
    // Encode everything before the transaction: a bad value fails the whole batch and writes nothing.
    const puts = (batch.puts ?? []).map((entry, i) => {
      assertStoredValue(entry.value, `puts[${i}].value`)
      return { collection: entry.collection, key: keyBytes(collectionPrefix(entry.collection), entry.key), bytes: packEntry(entry.key, entry.value) }
    })
    const deletes = (batch.deletes ?? []).map((entry) => ({ collection: entry.collection, key: keyBytes(collectionPrefix(entry.collection), entry.key) }))
    const meta = (batch.meta ?? []).map((entry, i) => {
      if (entry.value !== null) assertStoredValue(entry.value, `meta[${i}].value`)
      return { key: metaKey(entry.key), bytes: entry.value === null ? null : Buffer.from(encode(entry.value)) }
    })
    try {
      return await this.#root.transaction(() => {
        const deltas = new Map<string, number>()
        const bump = (collection: string, by: number): void => {
          deltas.set(collection, (deltas.get(collection) ?? 0) + by)
        }
        for (const put of puts) {
          if (!this.#data.doesExist(put.key)) bump(put.collection, 1)
          this.#data.putSync(put.key, put.bytes)
        }
        for (const del of deletes) {
          if (this.#data.removeSync(del.key)) bump(del.collection, -1)
        }
        for (const entry of meta) {
          if (entry.bytes === null) this.#meta.removeSync(entry.key)
          else this.#meta.putSync(entry.key, entry.bytes)
        }
        for (const [collection, delta] of deltas) {
          if (delta === 0) continue
          const key = countKey(collection)
          const next = readCount(this.#sys.getBinary(key)) + delta
          if (next <= 0) this.#sys.removeSync(key)
          else this.#sys.putSync(key, writeCount(next))
        }
        const seq = readCount(this.#sys.getBinary(SEQ_KEY)) + 1
        this.#sys.putSync(SEQ_KEY, writeCount(seq))
        return { seq }
      })
    } catch (error) {
      if (this.#closed) throw new StoreClosedError('The LMDB store was closed during a commit; nothing of it was written')
      throw new StoreError(`LMDB commit failed: ${error instanceof Error ? error.message : String(error)}; nothing of this batch was written`, undefined, { cause: error })
    }
  }

  /** The metadata value under `key`, or undefined. */
  async getMeta(key: string): Promise<Value | undefined> {
    this.#check()
    const bytes = this.#meta.getBinary(metaKey(key))
    return bytes === undefined ? undefined : (decode(bytes, STORED_LIMITS) as Value)
  }

  async mapInfo(map: string): Promise<SyncMapInfo | undefined> {
    this.#check()
    return this.#sync.mapInfo(map)
  }

  async syncMaps(): Promise<string[]> {
    this.#check()
    return this.#sync.syncMaps()
  }

  async getRecords(map: string, keys: readonly string[]): Promise<(SyncRecord | undefined)[]> {
    this.#check()
    return this.#sync.getRecords(map, keys)
  }

  async scanRecords(map: string, scan: RecordScan): Promise<SyncRecord[]> {
    this.#check()
    return this.#sync.scanRecords(map, scan)
  }

  async scanStoredRecords(map: string, scan: RecordScan): Promise<StoredRecords> {
    this.#check()
    return this.#sync.scanStoredRecords(map, scan)
  }

  async readLog(map: string, afterSeq: number, limit: number): Promise<SyncLogEntry[]> {
    this.#check()
    return this.#sync.readLog(map, afterSeq, limit)
  }

  async leafSums(map: string): Promise<{ head: number; leaves: [string, HashSum][] }> {
    this.#check()
    return this.#sync.leafSums(map)
  }

  async applyWrites(requests: readonly WriteRequest[]): Promise<WriteOutcome[]> {
    this.#check()
    try {
      return await this.#sync.applyWrites(requests)
    } catch (error) {
      if (this.#closed) throw new StoreClosedError('The LMDB store was closed during a commit; nothing of it was written')
      throw error
    }
  }

  async trimLog(map: string, throughSeq: number): Promise<number> {
    this.#check()
    return this.#sync.trimLog(map, throughSeq)
  }

  async removeRecords(map: string, keys: readonly string[], still: (record: SyncRecord) => boolean): Promise<string[]> {
    this.#check()
    return this.#sync.removeRecords(map, keys, still)
  }

  /** Waits for in-flight commits, then closes the environment. Idempotent. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true
      this.#closing = this.#root.close()
    }
    return this.#closing
  }
}
