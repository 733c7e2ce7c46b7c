/**
 * What a relay keeps of its maps, in its store, so that no map has to live in memory:
 *
 * - **records**: every key's merged CRDT state with the map's sequence number of its last
 *   change, read by key and scanned in a stable order — the order of the key's Merkle leaf
 *   path, then the key (`(leafPathOf(key), key)`), so a scan fills a device's hash-prefix
 *   pages one after another and a leaf's records are one range;
 * - **a change log**: per map, every change's sequence number and key in commit order,
 *   bounded (old entries are trimmed); a device that resumes from a cursor inside it gets
 *   the keys changed since, one outside it falls back to Merkle reconciliation;
 * - **Merkle leaf sums**: per map and leaf path, the sum of the entry hashes of its records
 *   (see `merkle/node-sums.ts`), updated in the write's own transaction, so the relay
 *   rebuilds a map's tree from at most 65,536 small rows instead of every record.
 *
 * Writes merge **inside the store's transaction**: {@link SyncStore.applyWrites} hands each
 * change's current record to its `decide` function, which validates, authorizes and merges
 * synchronously and returns the state to store. Two relays writing different fields of one
 * key over a shared store therefore never lose either field. Sequence numbers are
 * allocated in the same transaction, per map, so sequence order is commit order.
 *
 * Every backend (memory, LMDB, Postgres) passes `runSyncStoreTests` from
 * `@outpost/core/testing`.
 */
import type { StoredRecords } from '../protocol/stored-changes'
import type { CrdtState } from '../crdt/change'
import type { OutpostError } from '../errors'
import type { HashSum } from '../merkle/node-sums'
import type { CollectionKind, Value } from '../types'

/** Depth of the Merkle trees relays and devices keep per map (16^4 = 65,536 leaves). */
export const SYNC_TREE_DEPTH = 4

/** One stored record. */
export interface SyncRecord {
  readonly key: string
  /** The merged state. */
  readonly state: CrdtState
  /** The map's sequence number of the change that last changed it. */
  readonly seq: number
}

/** A map's bookkeeping. */
export interface SyncMapInfo {
  /** The kind every record of the map has (fixed by its first write). */
  readonly kind: CollectionKind
  /** The newest sequence number (0 before the first change). */
  readonly head: number
  /** The log answers every sequence number above this one; older cursors fall back to Merkle. */
  readonly floor: number
  /** Records stored (tombstones included). */
  readonly count: number
}

/** One change in a map's log. */
export interface SyncLogEntry {
  readonly seq: number
  readonly key: string
  /** What the writer kept about the record before this change (e.g. the fields a rule filter reads), if anything. */
  readonly before?: Value
}

/** What `decide` answers: the state to store, and what the log keeps about the state before. */
export interface WriteDecision {
  readonly state: CrdtState
  readonly before?: Value
}

/** One change to merge; see {@link SyncStore.applyWrites}. */
export interface WriteRequest {
  readonly map: string
  readonly kind: CollectionKind
  readonly key: string
  /**
   * Runs inside the store's transaction, in request order, with the key's current record
   * (as changed by earlier requests of the same call). Returns the new state (which must
   * differ from the current one), or undefined when the change teaches the store nothing;
   * throws an {@link OutpostError} to refuse this change alone. Synchronous on purpose.
   * A request whose kind differs from the map's (fixed by its first write, possibly by
   * another writer) is refused (INVALID_VALUE) without calling it.
   */
  decide(current: SyncRecord | undefined): WriteDecision | undefined
}

/** The result of one {@link WriteRequest}. */
export type WriteOutcome =
  | {
      readonly status: 'applied'
      readonly seq: number
      readonly state: CrdtState
      /** The record before this change (undefined: the key was new). */
      readonly previous: SyncRecord | undefined
    }
  | { readonly status: 'unchanged'; readonly current: SyncRecord | undefined }
  | { readonly status: 'refused'; readonly error: OutpostError }

/** Paging of {@link SyncStore.scanRecords}. */
export interface RecordScan {
  /** Start strictly after this key (the last key of the previous page), in the scan order. */
  readonly after?: string
  /** Only records whose leaf path starts with this hex prefix (a Merkle subtree). */
  readonly within?: string
  /** At most this many records. */
  readonly limit: number
}

/** The relay's record store; see the module comment. */
export interface SyncStore {
  /** The map's bookkeeping, or undefined for a map never written. */
  mapInfo(map: string): Promise<SyncMapInfo | undefined>
  /** Names of every map with bookkeeping. */
  syncMaps(): Promise<string[]>
  /** The records under `keys`, in the same order (undefined for a missing key). */
  getRecords(map: string, keys: readonly string[]): Promise<(SyncRecord | undefined)[]>
  /** A page of records in `(leaf path, key)` order. */
  scanRecords(map: string, scan: RecordScan): Promise<SyncRecord[]>
  /**
   * Optional: the page {@link scanRecords} gives, each record in its stored form,
   * `encode([key, seq, state])` by core's codec of a state checked when it was written, so
   * a relay puts it into frames as it is (`encodeStoredChanges`) instead of decoding it. A
   * store that keeps records some other way leaves it out.
   */
  scanStoredRecords?(map: string, scan: RecordScan): Promise<StoredRecords>
  /** Log entries with a sequence number above `afterSeq`, oldest first, at most `limit`. */
  readLog(map: string, afterSeq: number, limit: number): Promise<SyncLogEntry[]>
  /**
   * The map's non-empty Merkle leaf sums, by leaf path, read consistently with `head`: the
   * sums cover exactly the changes numbered up to `head` (a caller patching a tree it
   * loads replays only later changes).
   */
  leafSums(map: string): Promise<{ readonly head: number; readonly leaves: [leaf: string, sum: HashSum][] }>
  /**
   * Merges `requests` in one transaction (see {@link WriteRequest.decide}); each change
   * that alters a record gets the next sequence number of its map. Resolves once the
   * transaction is durable, with one outcome per request, in order. A store failure
   * rejects the whole call and writes nothing.
   */
  applyWrites(requests: readonly WriteRequest[]): Promise<WriteOutcome[]>
  /** Drops log entries with a sequence number at or below `throughSeq` (raising the floor); returns how many. */
  trimLog(map: string, throughSeq: number): Promise<number>
  /**
   * Removes records for good (tombstone GC): each key whose current record `still` accepts
   * is deleted in one transaction (the leaf sums follow). Returns the keys removed.
   */
  removeRecords(map: string, keys: readonly string[], still: (record: SyncRecord) => boolean): Promise<string[]>
}
