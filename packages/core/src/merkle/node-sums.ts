/**
 * The arithmetic of Merkle node hashes, shared by the in-memory {@link MerkleTree} and by
 * trees whose entries live in a store (the relay keeps only per-leaf sums in memory).
 *
 * A node's hash is the sum modulo 2^64 of the hashes of the entries under it, where an
 * entry's hash is `hash64(key + "\0" + digest)`. Sums are kept as two 32-bit halves plus
 * a count; adding and subtracting an entry touches the `depth + 1` nodes on its path.
 */
import type { MerkleNodeInfo } from '../protocol/messages'
import { EMPTY_DIGEST, digestFromParts, hash64Parts, type Digest } from './hash'

const HEX = '0123456789abcdef'
const TWO_32 = 0x1_0000_0000

/** Running sum of the entry hashes under one node, as two 32-bit halves, plus the entry count. */
export interface HashSum {
  hi: number
  lo: number
  count: number
}

/** The hash of one `key → digest` entry, as two 32-bit halves. */
export function entryHash(key: string, digest: Digest): [hi: number, lo: number] {
  return hash64Parts(key + '\u0000' + digest)
}

/** The leaf path (bucket) of `key` in a tree of `depth`: the first `depth` hex digits of `hash64(key)`. */
export function leafPathOf(key: string, depth: number): string {
  const [hi, lo] = hash64Parts(key)
  return digestFromParts(hi, lo).slice(0, depth)
}

/** Adds (`sign` 1) or subtracts (`sign` -1) an entry hash (and one count) to `sum`, in place. */
export function addToSum(sum: HashSum, [hi, lo]: readonly [number, number], sign: 1 | -1): void {
  if (sign === 1) {
    const low = sum.lo + lo
    const carry = low >= TWO_32 ? 1 : 0
    sum.lo = low - carry * TWO_32
    sum.hi = (sum.hi + hi + carry) % TWO_32
  } else {
    const low = sum.lo - lo
    const borrow = low < 0 ? 1 : 0
    sum.lo = low + borrow * TWO_32
    sum.hi = (sum.hi - hi - borrow + 2 * TWO_32) % TWO_32
  }
  sum.count += sign
}

/** Every non-empty node of a tree of fixed depth, by path; see the module comment. */
export class NodeSums {
  /** Number of hex nibbles in a leaf path. */
  readonly depth: number
  readonly #nodes = new Map<string, HashSum>()

  constructor(depth: number) {
    this.depth = depth
  }

  /** Adds or subtracts one entry hash along the path from the root to `leaf`. */
  apply(leaf: string, entry: readonly [number, number], sign: 1 | -1): void {
    for (let len = 0; len <= leaf.length; len++) {
      const path = leaf.slice(0, len)
      let sum = this.#nodes.get(path)
      if (sum === undefined) {
        sum = { hi: 0, lo: 0, count: 0 }
        this.#nodes.set(path, sum)
      }
      addToSum(sum, entry, sign)
      if (sum.count === 0) this.#nodes.delete(path)
    }
  }

  /** Adds a whole leaf's sum (loading a tree from stored leaf sums). */
  addLeaf(leaf: string, sum: HashSum): void {
    for (let len = 0; len <= leaf.length; len++) {
      const path = leaf.slice(0, len)
      let node = this.#nodes.get(path)
      if (node === undefined) {
        node = { hi: 0, lo: 0, count: 0 }
        this.#nodes.set(path, node)
      }
      addToSum(node, [sum.hi, sum.lo], 1)
      // addToSum counted one entry; a leaf sum stands for `sum.count` of them.
      node.count += sum.count - 1
      if (node.count === 0) this.#nodes.delete(path)
    }
  }

  /** True when the node at `path` holds at least one entry. */
  has(path: string): boolean {
    return this.#nodes.has(path)
  }

  /** The node at `path`; an empty or unknown path has count 0 and hash `"0000000000000000"`. */
  node(path: string): MerkleNodeInfo {
    const sum = this.#nodes.get(path)
    if (sum === undefined) return { path, hash: EMPTY_DIGEST, count: 0 }
    return { path, hash: digestFromParts(sum.hi, sum.lo), count: sum.count }
  }

  /** The non-empty children of `path` (none below the leaf level), in nibble order. */
  children(path: string): MerkleNodeInfo[] {
    const out: MerkleNodeInfo[] = []
    if (path.length >= this.depth) return out
    for (const nibble of HEX) {
      const child = path + nibble
      if (this.#nodes.has(child)) out.push(this.node(child))
    }
    return out
  }

  /** Forgets every node. */
  clear(): void {
    this.#nodes.clear()
  }
}
