/** Merkle trees and hashing for reconciliation. */
export {
  EMPTY_DIGEST,
  changeDigest,
  counterDigest,
  digestFromParts,
  digestToParts,
  hash64,
  hash64Parts,
  isDigest,
  lwwDigest,
  orDigest,
  stateDigest,
} from './hash'
export type { Digest } from './hash'
export {
  DEFAULT_MERKLE_DEPTH,
  ENTRY_EXCHANGE_THRESHOLD,
  MAX_MERKLE_DEPTH,
  MerkleTree,
  diffChildren,
  diffEntries,
  needsEntryExchange,
} from './merkle-tree'
export type { EntryDiff, MerkleTreeOptions } from './merkle-tree'
export { NodeSums, addToSum, entryHash, leafPathOf } from './node-sums'
export type { HashSum } from './node-sums'
