/**
 * The LMDB store's change log rows (`log`, under `(map id, seq)`): each change's log entry
 * for cursor resume together with what its write leaves for later, its Merkle leaf delta
 * and, for a new key, its place in scan order. The rows of a map's changes after its
 * `folded` mark are its pending ones: folded into the `leaves` sums and the `order` index
 * once a map has {@link FOLD_AT} of them (inside that write's transaction), before a GC
 * removal or a log trim that reaches them, or never (reads add the pending rows to what is
 * folded). A folded row stays as the log entry; only its entry is read again.
 *
 * Why pending: leaf paths are hashes, so writing each change's leaf sum and order entry at
 * once dirties one random B-tree page per change in each of those two databases (measured
 * with `bench/profile/lmdb-ingest.ts`: about 2.7 MB more written per 256-change commit,
 * each). Log rows are appended in sequence order instead (a few pages per commit), and a
 * fold writes many changes into each leaf and order page it touches. Why one row (format 3;
 * format 2 kept a `pending` row beside the log row under the same key): one put per change
 * instead of a put, and a put and a remove at the fold.
 *
 * Row value: `flags(1) newHi(4) newLo(4) n(2) leaf(2) body(n)`, then `oldHi(4) oldLo(4)`
 * for an update of a stored key, then the log entry `encode([key])` or `encode([key, before])`.
 * `body` is a new key's order key without map id and leaf (n = 0 for an update), so
 * `leaf(2) body(n)` is its order key without map id. A row migrated from format 2 was
 * folded already: its delta is zero and never read.
 */
import type { Database } from 'lmdb'
import { addToSum, encodeCheckedView, type HashSum, type Value } from '@outpost/core'

/** A map folds its pending rows once it has this many (bounds what reads add up and a fold's size). */
export const FOLD_AT = 16_384

const INSERT = 1
/** Bytes before `body`. */
const HEAD = 13

/** The leaf delta of one change; `old` undefined for a new key (whose `body` is then given). */
export interface PendingChange {
  readonly leaf: number
  readonly hash: readonly [number, number]
  readonly old: readonly [number, number] | undefined
  readonly body: Buffer
}

/** Encodes a log row: `change`'s delta and the log `entry` (already checked: see `storedTransient`). */
export function packLogRow(change: PendingChange, entry: Value): Buffer {
  const encoded = encodeCheckedView(entry)
  const insert = change.old === undefined
  const body = insert ? change.body.length : 0
  const out = Buffer.allocUnsafe(HEAD + body + (insert ? 0 : 8) + encoded.length)
  out[0] = insert ? INSERT : 0
  writeU32(out, 1, change.hash[0])
  writeU32(out, 5, change.hash[1])
  out[9] = body >>> 8
  out[10] = body & 0xff
  out[11] = change.leaf >>> 8
  out[12] = change.leaf & 0xff
  let at = HEAD
  if (change.old === undefined) at += change.body.copy(out, HEAD)
  else {
    writeU32(out, HEAD, change.old[0])
    writeU32(out, HEAD + 4, change.old[1])
    at += 8
  }
  out.set(encoded, at)
  return out
}

/** A folded log row (format 2's log value `entry`, migrated): no delta. */
export function foldedLogRow(entry: Uint8Array): Buffer {
  const out = Buffer.alloc(HEAD + 8 + entry.length)
  out.set(entry, HEAD + 8)
  return out
}

// Big-endian by hand: the halves are below 2^32 (writeUInt32BE's range checks cost more than the write, per change).
function writeU32(out: Buffer, at: number, n: number): void {
  out[at] = n >>> 24
  out[at + 1] = (n >>> 16) & 0xff
  out[at + 2] = (n >>> 8) & 0xff
  out[at + 3] = n & 0xff
}

function bodyLength(row: Buffer): number {
  return ((row[9] as number) << 8) | (row[10] as number)
}

/** The log entry of a log row (`encode([key])` or `encode([key, before])`), a view of `row`. */
export function logEntry(row: Buffer): Buffer {
  const insert = ((row[0] as number) & INSERT) !== 0
  return row.subarray(HEAD + bodyLength(row) + (insert ? 0 : 8))
}

/** Applies one pending row to the sums `sumOf` hands out; returns the new key's order key (without map id, a view of `row`), if the row added one. */
export function applyPending(row: Buffer, sumOf: (leaf: number) => HashSum): Buffer | undefined {
  const n = bodyLength(row)
  const sum = sumOf(row.readUInt16BE(11))
  addToSum(sum, [row.readUInt32BE(1), row.readUInt32BE(5)], 1)
  if (((row[0] as number) & INSERT) === 0) {
    addToSum(sum, [row.readUInt32BE(HEAD + n), row.readUInt32BE(HEAD + n + 4)], -1)
    return undefined
  }
  return row.subarray(11, HEAD + n)
}

/** The order key (without map id) of a pending insert row, a view of `row`, or undefined for an update row. */
export function pendingOrderBody(row: Buffer): Buffer | undefined {
  if (((row[0] as number) & INSERT) === 0) return undefined
  return row.subarray(11, HEAD + bodyLength(row))
}

/**
 * The sorted order keys of a map's pending inserts, kept per map between scans (a streamed
 * scan reads many pages) and extended with the rows appended since; dropped when the map
 * folds (its `folded` mark moves).
 */
export class PendingOrderCache {
  readonly #maps = new Map<number, { folded: number; through: number; keys: Buffer[] }>()

  /** Order keys (with map id) of the pending inserts of map `id` with sequence numbers in (folded, head]; `pending` is the `log` database. */
  keys(pending: Database<Buffer, Buffer>, id: number, folded: number, head: number, keyOf: (seq: number) => Buffer): Buffer[] {
    let entry = this.#maps.get(id)
    if (entry === undefined || entry.folded !== folded || entry.through > head) {
      if (this.#maps.size >= 256) this.#maps.clear()
      entry = { folded, through: folded, keys: [] }
      this.#maps.set(id, entry)
    }
    if (entry.through < head) {
      const before = entry.keys.length
      for (const { value } of pending.getRange({ start: keyOf(entry.through + 1), end: keyOf(head + 1) })) {
        const body = pendingOrderBody(value)
        if (body === undefined) continue
        const key = Buffer.allocUnsafe(4 + body.length)
        key.writeUInt32BE(id, 0)
        body.copy(key, 4)
        entry.keys.push(key)
      }
      if (entry.keys.length > before) entry.keys.sort(Buffer.compare)
      entry.through = head
    }
    return entry.keys
  }
}
