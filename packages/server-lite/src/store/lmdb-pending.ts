/**
 * What a write leaves for later in the LMDB store: each change's Merkle leaf delta and, for
 * a new key, its place in scan order, appended under `(map id, seq)` in the `pending`
 * database, and folded into the `leaves` sums and the `order` index once a map has
 * {@link FOLD_AT} of them (inside that write's transaction), before a GC removal, or never
 * (reads add the pending rows to what is folded).
 *
 * Why: leaf paths are hashes, so writing each change's leaf sum and order entry at once
 * dirties one random B-tree page per change in each of those two databases (measured with
 * `bench/profile/lmdb-ingest.ts`: about 2.7 MB more written per 256-change commit, each).
 * Pending rows are appended in sequence order instead (a few pages per commit), and a fold
 * writes many changes into each leaf and order page it touches.
 *
 * Row value: `flags(1) leaf(2) newHi(4) newLo(4)`, then `oldHi(4) oldLo(4)` for an update
 * of a stored key, or the key's body (its order key without map id and leaf) for a new key.
 */
import type { Database } from 'lmdb'
import { addToSum, type HashSum } from '@outpost/core'

/** A map folds its pending rows once it has this many (bounds what reads add up and a fold's size). */
export const FOLD_AT = 16_384

const INSERT = 1

/** The leaf delta of one change; `old` undefined for a new key (whose `body` is then given). */
export interface PendingChange {
  readonly leaf: number
  readonly hash: readonly [number, number]
  readonly old: readonly [number, number] | undefined
  readonly body: Buffer
}

/** Encodes a pending row (see the module comment). */
export function packPending(change: PendingChange): Buffer {
  const insert = change.old === undefined
  const out = Buffer.allocUnsafe(11 + (insert ? change.body.length : 8))
  out[0] = insert ? INSERT : 0
  out.writeUInt16BE(change.leaf, 1)
  out.writeUInt32BE(change.hash[0], 3)
  out.writeUInt32BE(change.hash[1], 7)
  if (change.old === undefined) change.body.copy(out, 11)
  else {
    out.writeUInt32BE(change.old[0], 11)
    out.writeUInt32BE(change.old[1], 15)
  }
  return out
}

/** Applies one pending row to the sums `sumOf` hands out; returns the new key's order key (without map id), if the row added one. */
export function applyPending(row: Buffer, sumOf: (leaf: number) => HashSum): Buffer | undefined {
  const leaf = row.readUInt16BE(1)
  const sum = sumOf(leaf)
  addToSum(sum, [row.readUInt32BE(3), row.readUInt32BE(7)], 1)
  if (((row[0] as number) & INSERT) === 0) {
    addToSum(sum, [row.readUInt32BE(11), row.readUInt32BE(15)], -1)
    return undefined
  }
  return orderBody(leaf, row.subarray(11))
}

/** The order key (without map id) of a pending insert row, or undefined for an update row. */
export function pendingOrderBody(row: Buffer): Buffer | undefined {
  if (((row[0] as number) & INSERT) === 0) return undefined
  return orderBody(row.readUInt16BE(1), row.subarray(11))
}

function orderBody(leaf: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + body.length)
  out.writeUInt16BE(leaf, 0)
  body.copy(out, 2)
  return out
}

/**
 * The sorted order keys of a map's pending inserts, kept per map between scans (a streamed
 * scan reads many pages) and extended with the rows appended since; dropped when the map
 * folds (its `folded` mark moves).
 */
export class PendingOrderCache {
  readonly #maps = new Map<number, { folded: number; through: number; keys: Buffer[] }>()

  /** Order keys (with map id) of the pending inserts of map `id` with sequence numbers in (folded, head]. */
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
