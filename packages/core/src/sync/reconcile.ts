/**
 * The Merkle reconciliation descent, once, for both sides: the initiator (a device) walks
 * down from the roots, asking for children of big differing nodes (`reconcile`) and
 * exchanging `[key, digest, newest stamp]` lists of small or leaf ones (`entries`); the
 * responder (the relay) answers from whatever holds its tree (memory, or a store's leaf
 * sums). See `merkle/merkle-tree.ts` for the tree and the costs.
 *
 * ```
 *   initiator                               responder
 *   start(localRoot, remoteRoot) ── steps ──▶
 *     'reconcile' {paths}                ──▶ answerReconcile(tree, paths) ─▶ children
 *   onNodes(paths, children)   ◀── ───────
 *     'entries' {path, list}             ──▶ compareEntries(local list, list)
 *                                              send: records the device lacks or holds older
 *                                              ask:  keys the device may hold writes for
 *                                              stray: keys the device holds, the view does not
 * ```
 *
 * Each entry carries the newest stamp of the key's state, so the responder asks the device
 * for a key (`push`) only when the device may hold a write the responder lacks (its newest
 * stamp is newer than the responder's): nobody uploads a stale copy.
 */
import type { Digest } from '../merkle/hash'
import { ENTRY_EXCHANGE_THRESHOLD, diffChildren, needsEntryExchange } from '../merkle/merkle-tree'
import type { MerkleNodeInfo } from '../protocol/messages'
import type { Stamp } from '../types'

const EMPTY: Digest = '0000000000000000'

/** One entry of an `entries` exchange: key, digest, and the newest stamp of the key's state (null when it has none). */
export type ReconcileEntry = readonly [key: string, digest: Digest, newest: Stamp | null]

/** A Merkle tree as reconciliation reads it (an in-memory tree, or nodes built from stored leaf sums). */
export interface ReconcileTree {
  readonly depth: number
  node(path: string): MerkleNodeInfo
  children(path: string): MerkleNodeInfo[]
}

/** Options of a {@link ReconcileInitiator}. */
export interface ReconcileInitiatorOptions {
  /** A differing node with at most this many keys (on either side), or a leaf, is settled by an entry exchange. */
  readonly threshold?: number
  /** Most nodes in one `reconcile` step: a larger set of differing nodes is cut into several steps (each fits one frame, and its answer too). */
  readonly maxNodesPerStep?: number
}

/** What the initiator sends next. */
export type ReconcileStep = { readonly type: 'reconcile'; readonly nodes: readonly MerkleNodeInfo[] } | { readonly type: 'entries'; readonly path: string }

/** The initiator's side of one descent; see the module comment. */
export class ReconcileInitiator {
  readonly #tree: ReconcileTree
  readonly #threshold: number
  readonly #maxNodes: number

  constructor(tree: ReconcileTree, options: ReconcileInitiatorOptions = {}) {
    this.#tree = tree
    this.#threshold = options.threshold ?? ENTRY_EXCHANGE_THRESHOLD
    this.#maxNodes = Math.max(1, Math.floor(options.maxNodesPerStep ?? Number.POSITIVE_INFINITY))
  }

  /** The first steps for two roots (none when they are equal). */
  start(remoteRoot: MerkleNodeInfo): ReconcileStep[] {
    const local = this.#tree.node('')
    if (local.hash === remoteRoot.hash) return []
    return this.#descend([[local, remoteRoot]])
  }

  /**
   * The next steps once the responder answered one `reconcile` step (its nodes' paths are
   * `asked`) with `children`. Steps may be answered in any order, each on its own.
   */
  onNodes(asked: readonly string[], children: readonly MerkleNodeInfo[]): ReconcileStep[] {
    const byParent = new Map<string, MerkleNodeInfo[]>(asked.map((path) => [path, []]))
    for (const node of children) {
      if (node.path.length === 0) continue
      byParent.get(node.path.slice(0, -1))?.push(node)
    }
    const pairs: [MerkleNodeInfo, MerkleNodeInfo][] = []
    for (const [parent, remoteChildren] of byParent) {
      // A parent the responder holds nothing under comes back without children: every local child differs.
      const remote = new Map(remoteChildren.map((c) => [c.path, c]))
      for (const local of diffChildren(this.#tree, parent, remoteChildren)) {
        pairs.push([local, remote.get(local.path) ?? { path: local.path, hash: EMPTY, count: 0 }])
      }
    }
    return this.#descend(pairs)
  }

  #descend(pairs: readonly (readonly [MerkleNodeInfo, MerkleNodeInfo])[]): ReconcileStep[] {
    const steps: ReconcileStep[] = []
    const deeper: MerkleNodeInfo[] = []
    for (const [local, remote] of pairs) {
      if (needsEntryExchange(local, remote, this.#tree.depth, this.#threshold)) steps.push({ type: 'entries', path: local.path })
      else deeper.push(local)
    }
    for (let i = 0; i < deeper.length; i += this.#maxNodes) steps.push({ type: 'reconcile', nodes: deeper.slice(i, i + this.#maxNodes) })
    return steps
  }
}

/** The responder's answer to a `reconcile`: the non-empty children of each distinct, well-formed requested path. */
export function answerReconcile(tree: ReconcileTree, requested: readonly MerkleNodeInfo[]): MerkleNodeInfo[] {
  const out: MerkleNodeInfo[] = []
  const seen = new Set<string>()
  for (const node of requested) {
    if (seen.has(node.path) || !/^[0-9a-f]*$/.test(node.path) || node.path.length >= tree.depth) continue
    seen.add(node.path)
    out.push(...tree.children(node.path))
  }
  return out
}

/** How the responder settles one `entries` exchange; see {@link compareEntries}. */
export interface EntriesAnswer {
  /** Keys the responder holds that the initiator lacks or holds differently: send their records. */
  readonly send: string[]
  /** Keys the initiator may hold writes of its own for (it lacks nothing the responder knows, or its copy is newer): ask for them. */
  readonly ask: string[]
  /** Keys the initiator holds that the responder's list does not contain (the caller decides: push, or move out). */
  readonly stray: string[]
}

/**
 * Compares the responder's `local` list with the initiator's `remote` list of one path.
 * For a key both hold with different digests, the responder sends its record; it also asks
 * for the initiator's copy only when that copy's newest stamp is newer than its own (a
 * write it has not seen). A key only the initiator holds is a stray.
 */
export function compareEntries(local: Iterable<ReconcileEntry>, remote: Iterable<ReconcileEntry>): EntriesAnswer {
  const mine = new Map<string, ReconcileEntry>()
  for (const entry of local) mine.set(entry[0], entry)
  const send: string[] = []
  const ask: string[] = []
  const stray: string[] = []
  const theirs = new Set<string>()
  for (const entry of remote) {
    const [key, digest, newest] = entry
    if (theirs.has(key)) continue
    theirs.add(key)
    const held = mine.get(key)
    if (held === undefined) {
      stray.push(key)
      continue
    }
    if (held[1] === digest) continue
    send.push(key)
    if (newest !== null && (held[2] === null || newest > held[2])) ask.push(key)
  }
  for (const key of mine.keys()) if (!theirs.has(key)) send.push(key)
  return { send, ask, stray }
}
