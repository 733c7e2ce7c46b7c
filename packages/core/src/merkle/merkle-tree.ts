/**
 * A sparse, fixed-shape Merkle tree over `key -> digest` entries, and the helpers both
 * sides of reconciliation use to find what differs.
 *
 * Shape: fan-out 16, fixed depth (default 4). A node's path is a string of hex nibbles
 * from the root (`""`); a key lives in the leaf bucket named by the first `depth` hex
 * digits of `hash64(key)`. A node's hash is the sum modulo 2^64 of the hashes of the
 * entries under it, where an entry's hash is `hash64(key + "\u0000" + digest)`. A sum is
 * order-independent and invertible, so `set`/`delete` update only the `depth + 1` nodes
 * on the key's path, and two trees have equal roots exactly when (up to 64-bit
 * collisions) they hold the same entries, whatever order they were built in.
 *
 * Sparse: only non-empty nodes exist (Map-based), so memory is proportional to the
 * number of entries: the relay keeps one tree per map and per shape.
 *
 * ## How a caller descends (both sides run the same helpers)
 *
 * ```
 *   compare roots ── equal ──▶ done
 *        │ differ
 *        ▼
 *   frontier = [""]
 *   for each differing path p:
 *     if needsEntryExchange(localNode, remoteNode, depth):   // small or leaf
 *        exchange tree.entries(p) ──▶ diffEntries(local, remote)
 *          onlyLocalOrDifferent  → send those records
 *          onlyRemoteOrDifferent → ask for those records
 *     else
 *        fetch the remote's children(p) ──▶ diffChildren(tree, p, remoteChildren)
 *          → the differing child paths become the next frontier
 * ```
 *
 * After k changes among N entries, each change dirties one path of `depth + 1` nodes, so
 * a round exchanges O(k · 16 · depth) node infos plus the entries of at most k small
 * subtrees: traffic grows with k·log N, not with N.
 */
import { ConfigError } from '../errors'
import type { MerkleNodeInfo } from '../protocol/messages'
import { EMPTY_DIGEST, type Digest } from './hash'
import { NodeSums, addToSum, entryHash, leafPathOf, type HashSum } from './node-sums'

const HEX = '0123456789abcdef'

/** Below or at this many entries (on the larger side), a differing node's entries are exchanged instead of its children. */
export const ENTRY_EXCHANGE_THRESHOLD = 64

/** The default tree depth: 16^4 = 65,536 leaf buckets. */
export const DEFAULT_MERKLE_DEPTH = 4

/** The deepest tree supported (a 64-bit hash has 16 hex nibbles; the wire allows 16-character paths). */
export const MAX_MERKLE_DEPTH = 16

/** Options of a {@link MerkleTree}. */
export interface MerkleTreeOptions {
  /** Number of hex nibbles in a leaf path (1..16). Both sides of a reconciliation must use the same depth. */
  readonly depth?: number
}

/** A sparse Merkle tree over `key -> digest` entries; see the module comment for its shape and the descent. */
export class MerkleTree {
  /** Number of hex nibbles in a leaf path. */
  readonly depth: number
  readonly #entries = new Map<string, Digest>()
  /** Every non-empty node, by path (root `""` included once anything is stored). */
  readonly #nodes: NodeSums
  /** Keys per non-empty leaf bucket, so `entries(path)` never scans the whole tree. */
  readonly #buckets = new Map<string, Set<string>>()

  constructor(options: MerkleTreeOptions = {}) {
    const depth = options.depth ?? DEFAULT_MERKLE_DEPTH
    if (!Number.isInteger(depth) || depth < 1 || depth > MAX_MERKLE_DEPTH) {
      throw new ConfigError(`Merkle tree depth must be an integer from 1 to ${MAX_MERKLE_DEPTH}, got ${String(depth)}`)
    }
    this.depth = depth
    this.#nodes = new NodeSums(depth)
  }

  /**
   * Builds a tree from `[key, digest]` entries (a later duplicate key wins) in one pass:
   * entry hashes are summed per leaf bucket, then each non-empty leaf is added once along
   * its path, instead of `depth + 1` node updates per entry. The result equals a tree built
   * by {@link set} in any order (law 2 of `merkle.property.test.ts`).
   */
  static from(entries: Iterable<readonly [string, Digest]>, options?: MerkleTreeOptions): MerkleTree {
    const tree = new MerkleTree(options)
    tree.#load(entries)
    return tree
  }

  /** Fills an empty tree; see {@link from}. */
  #load(entries: Iterable<readonly [string, Digest]>): void {
    for (const [key, digest] of entries) this.#entries.set(key, digest)
    const leaves = new Map<string, HashSum>()
    for (const [key, digest] of this.#entries) {
      const leaf = this.leafPath(key)
      let sum = leaves.get(leaf)
      if (sum === undefined) {
        sum = { hi: 0, lo: 0, count: 0 }
        leaves.set(leaf, sum)
        this.#buckets.set(leaf, new Set())
      }
      addToSum(sum, entryHash(key, digest), 1)
      ;(this.#buckets.get(leaf) as Set<string>).add(key)
    }
    for (const [leaf, sum] of leaves) this.#nodes.addLeaf(leaf, sum)
  }

  /** Number of entries. */
  get size(): number {
    return this.#entries.size
  }

  /** The leaf path (bucket) of `key`: the first `depth` hex digits of `hash64(key)`. */
  leafPath(key: string): string {
    return leafPathOf(key, this.depth)
  }

  /** The digest stored for `key`, if any. */
  get(key: string): Digest | undefined {
    return this.#entries.get(key)
  }

  /** True when `key` has an entry. */
  has(key: string): boolean {
    return this.#entries.has(key)
  }

  /** Stores (or replaces) `key`'s digest, updating the `depth + 1` nodes on its path. */
  set(key: string, digest: Digest): void {
    const previous = this.#entries.get(key)
    if (previous === digest) return
    const leaf = this.leafPath(key)
    if (previous !== undefined) this.#nodes.apply(leaf, entryHash(key, previous), -1)
    this.#entries.set(key, digest)
    if (previous === undefined) {
      let bucket = this.#buckets.get(leaf)
      if (bucket === undefined) {
        bucket = new Set()
        this.#buckets.set(leaf, bucket)
      }
      bucket.add(key)
    }
    this.#nodes.apply(leaf, entryHash(key, digest), 1)
  }

  /** Removes `key`'s entry; returns whether it existed. */
  delete(key: string): boolean {
    const previous = this.#entries.get(key)
    if (previous === undefined) return false
    const leaf = this.leafPath(key)
    this.#entries.delete(key)
    const bucket = this.#buckets.get(leaf)
    bucket?.delete(key)
    if (bucket !== undefined && bucket.size === 0) this.#buckets.delete(leaf)
    this.#nodes.apply(leaf, entryHash(key, previous), -1)
    return true
  }

  /** Removes every entry. */
  clear(): void {
    this.#entries.clear()
    this.#nodes.clear()
    this.#buckets.clear()
  }

  /** The root node. */
  root(): MerkleNodeInfo {
    return this.node('')
  }

  /** The node at `path`; an empty or unknown path has count 0 and hash `"0000000000000000"`. */
  node(path: string): MerkleNodeInfo {
    return this.#nodes.node(path)
  }

  /** The non-empty children of `path` (none below the leaf level), in nibble order. */
  children(path: string): MerkleNodeInfo[] {
    return this.#nodes.children(path)
  }

  /** Every `[key, digest]` entry under `path`, sorted by key. Visits only the non-empty subtree of `path`. */
  entries(path = ''): [string, Digest][] {
    const out: [string, Digest][] = []
    if (path.length > this.depth) return out
    if (path === '') {
      for (const entry of this.#entries) out.push(entry)
    } else {
      this.#collect(path, out)
    }
    out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    return out
  }

  /** Every key, in insertion order. */
  keys(): IterableIterator<string> {
    return this.#entries.keys()
  }

  #collect(path: string, out: [string, Digest][]): void {
    if (!this.#nodes.has(path)) return
    if (path.length === this.depth) {
      for (const key of this.#buckets.get(path) ?? []) out.push([key, this.#entries.get(key) as Digest])
      return
    }
    for (const nibble of HEX) this.#collect(path + nibble, out)
  }
}

/**
 * The local child nodes of `path` whose hash differs from the remote's (a child missing
 * on one side counts as empty, so a local child may come back with count 0). Remote
 * nodes that are not direct children of `path` are ignored.
 */
export function diffChildren(tree: { readonly depth: number; node(path: string): MerkleNodeInfo }, path: string, remoteChildren: readonly MerkleNodeInfo[]): MerkleNodeInfo[] {
  if (path.length >= tree.depth) return []
  const remote = new Map<string, string>()
  for (const child of remoteChildren) {
    if (child.path.length === path.length + 1 && child.path.startsWith(path) && HEX.includes(child.path.charAt(path.length))) {
      remote.set(child.path, child.hash)
    }
  }
  const out: MerkleNodeInfo[] = []
  for (const nibble of HEX) {
    const local = tree.node(path + nibble)
    const remoteHash = remote.get(local.path) ?? EMPTY_DIGEST
    if (local.hash !== remoteHash) out.push(local)
  }
  return out
}

/** What differs between two `[key, digest]` lists of the same path. A key whose digests differ is in both lists. */
export interface EntryDiff {
  /** Keys only the local side has, or has with a different digest: send these records. */
  readonly onlyLocalOrDifferent: string[]
  /** Keys only the remote side has, or has with a different digest: ask for these records. */
  readonly onlyRemoteOrDifferent: string[]
}

/** Compares two `[key, digest]` lists (any order); see {@link EntryDiff}. */
export function diffEntries(local: Iterable<readonly [string, Digest]>, remote: Iterable<readonly [string, Digest]>): EntryDiff {
  const remoteMap = new Map<string, Digest>()
  for (const [key, digest] of remote) remoteMap.set(key, digest)
  const onlyLocalOrDifferent: string[] = []
  const onlyRemoteOrDifferent: string[] = []
  const seen = new Set<string>()
  for (const [key, digest] of local) {
    seen.add(key)
    const theirs = remoteMap.get(key)
    if (theirs === digest) continue
    onlyLocalOrDifferent.push(key)
    if (theirs !== undefined) onlyRemoteOrDifferent.push(key)
  }
  for (const key of remoteMap.keys()) if (!seen.has(key)) onlyRemoteOrDifferent.push(key)
  return { onlyLocalOrDifferent, onlyRemoteOrDifferent }
}

/**
 * Whether a differing node should be settled by exchanging its entries rather than
 * descending: at the leaf level, or when neither side holds more than
 * {@link ENTRY_EXCHANGE_THRESHOLD} entries under it.
 */
export function needsEntryExchange(local: MerkleNodeInfo, remote: MerkleNodeInfo, depth: number, threshold = ENTRY_EXCHANGE_THRESHOLD): boolean {
  return local.path.length >= depth || Math.max(local.count, remote.count) <= threshold
}
