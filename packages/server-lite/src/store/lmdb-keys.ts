/**
 * The byte layouts of the LMDB store's record databases (see `lmdb-sync.ts` for what each
 * database holds): keys (map id, UTF-16 key bodies, leaf paths, sequence numbers), stored
 * values, leaf sums, and the per-transaction leaf-sum accumulator.
 */
import { createHash } from 'node:crypto'
import type { Database } from 'lmdb'
import { SYNC_TREE_DEPTH, assertStoredValue, encodeChecked, encodeCheckedView, leafPathOf, type CollectionKind, type HashSum, type Value } from '@outpost/core'
import { leafOf, utf16 } from './key-bytes'

/** Record keys longer than this many UTF-16 units are stored as their first 512 plus a hash. */
export const MAX_PLAIN_KEY_UNITS = 940
export const LONG_KEY_PREFIX_UNITS = 512
export const LAST_MAP_ID = Buffer.from('mapid')

/** `value` encoded for a database, already checked (`assertStoredValue`): no self-check, and a Buffer view of the one copy `encodeChecked` makes. */
export function stored(value: Value): Buffer {
  const bytes = encodeChecked(value)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * `value` encoded for a `putSync` inside a write transaction, which copies the bytes into
 * LMDB before it returns: a view of the encoder's shared buffer, valid until the next encode
 * (no copy, no allocation per value: the write path's values feed the GC otherwise).
 */
export function storedTransient(value: Value): Buffer {
  // The databases are typed for Buffer values; lmdb takes any Uint8Array (msgpackr hands out Buffers in Node).
  return encodeCheckedView(value) as Buffer
}

export function idBytes(id: number): Buffer {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(id, 0)
  return out
}

/** A record key without its map id: the key's bytes (see the module comment), and its leaf path. */
export interface RecordKeyBody {
  readonly body: Buffer
  /** The leaf path as a number. */
  readonly leaf: number
}

export function recordKeyBody(key: string): RecordKeyBody {
  const plain = utf16(key)
  const body = key.length <= MAX_PLAIN_KEY_UNITS ? plain : Buffer.concat([plain.subarray(0, LONG_KEY_PREFIX_UNITS * 2), createHash('sha256').update(plain).digest()])
  return { body, leaf: leafOf(key) }
}

/** A record key with room for its map id: `key` is `id(4) + body` once {@link keyedBy} wrote the id, `body` is a view of it. */
export interface RecordKeySlot extends RecordKeyBody {
  readonly key: Buffer
}

/** {@link recordKeyBody} in a buffer with 4 bytes in front for the map id (not known before the transaction): no copy per key. */
export function recordKeySlot(key: string): RecordKeySlot {
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
export function keyedBy(slot: RecordKeySlot, id: number): Buffer {
  const key = slot.key
  // Big-endian by hand: a map id is below 2^32 (writeUInt32BE's range checks cost more than the write).
  key[0] = id >>> 24
  key[1] = (id >>> 16) & 0xff
  key[2] = (id >>> 8) & 0xff
  key[3] = id & 0xff
  return key
}

/** The `order` key of a record: map id, leaf path, key body. */
export function orderKey(id: number, key: RecordKeyBody): Buffer {
  const out = Buffer.allocUnsafe(6 + key.body.length)
  out.writeUInt32BE(id, 0)
  out.writeUInt16BE(key.leaf, 4)
  key.body.copy(out, 6)
  return out
}

/** The value of an `order` row: LMDB wants one, the key says everything. */
export const ORDER_VALUE = Buffer.from([1])

/** `body` behind the 4-byte map id. */
export function withId(id: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length)
  out.writeUInt32BE(id, 0)
  body.copy(out, 4)
  return out
}

export function recordKey(id: number, key: string): Buffer {
  return withId(id, recordKeyBody(key).body)
}

export function seqKey(id: number, seq: number): Buffer {
  const out = Buffer.allocUnsafe(12)
  out.writeUInt32BE(id, 0)
  // The sequence number as two 32-bit halves (it stays below 2^53): no BigInt per key.
  out.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 4)
  out.writeUInt32BE(seq >>> 0, 8)
  return out
}

/** The smallest key greater than every key that starts with `prefix`. */
export function after(prefix: Buffer): Buffer {
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
export function subtreeRange(id: number, within: string): { start: Buffer; end: Buffer } {
  const head = idBytes(id)
  const padded = within.padEnd(SYNC_TREE_DEPTH, '0')
  const low = Buffer.from(padded, 'hex')
  const high = Buffer.from(within.padEnd(SYNC_TREE_DEPTH, 'f'), 'hex')
  return { start: Buffer.concat([head, low]), end: after(Buffer.concat([head, high])) }
}

export interface MapRow {
  id: number
  kind: CollectionKind
  head: number
  floor: number
  count: number
  /** Changes up to this sequence number are folded into `leaves` and `order`; later ones are `pending` rows. */
  folded: number
}

export function readSum(bytes: Buffer | undefined): HashSum {
  if (bytes === undefined) return { hi: 0, lo: 0, count: 0 }
  // The count as two 32-bit halves (it stays below 2^53): no BigInt per leaf row.
  return { hi: bytes.readUInt32BE(0), lo: bytes.readUInt32BE(4), count: bytes.readUInt32BE(8) * 0x1_0000_0000 + bytes.readUInt32BE(12) }
}

export function writeSum(sum: HashSum): Buffer {
  const out = Buffer.allocUnsafe(16)
  out.writeUInt32BE(sum.hi, 0)
  out.writeUInt32BE(sum.lo, 4)
  out.writeUInt32BE(Math.floor(sum.count / 0x1_0000_0000), 8)
  out.writeUInt32BE(sum.count >>> 0, 12)
  return out
}

/**
 * The Merkle leaf sums one transaction changes: each leaf row read once, changed in memory
 * and written (or removed when empty) once at the end, however many of its keys changed.
 */
export class LeafSums {
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

  /** Writes every changed sum (inside the caller's transaction), in key order (slots sort as their keys do): a fold reaches each leaf page once, not once per leaf. */
  write(): void {
    const slots = [...this.#rows.keys()].sort((a, b) => a - b)
    for (const slot of slots) {
      const { key, sum } = this.#rows.get(slot) as { key: Buffer; sum: HashSum }
      if (sum.count === 0) this.#leaves.removeSync(key)
      else this.#leaves.putSync(key, writeSum(sum))
    }
  }
}

/** The index of the first key in sorted `keys` not below `key`. */
export function lowerBound(keys: readonly Buffer[], key: Buffer): number {
  let low = 0
  let high = keys.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (Buffer.compare(keys[middle] as Buffer, key) < 0) low = middle + 1
    else high = middle
  }
  return low
}


export function readUint(bytes: Buffer | undefined): number {
  return bytes === undefined ? 0 : Number(bytes.readBigUInt64BE(0))
}

export function writeUint(n: number): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeBigUInt64BE(BigInt(n), 0)
  return out
}
