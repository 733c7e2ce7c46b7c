/**
 * One replicated shape on this device: which local keys belong to it and the Merkle tree
 * over their digests that reconciliation compares with the relay's.
 *
 * A whole-map shape (`{ map }`, optionally with `fields`) covers every local key of the
 * map. A shape with `where` or `limit` covers the keys the relay delivered for it (minus
 * its move-outs) plus local writes that match `where`: with a `fields` projection the
 * device may not hold the fields `where` reads, so membership is recorded (and persisted
 * by the engine), not recomputed.
 *
 * The tree is derived from memory, so it is built only when something reads it (a
 * reconciliation, a subscribe sending its root) from a {@link ReplicaSource}, kept current
 * by {@link ShapeReplica.track} from then on, and dropped by
 * {@link ShapeReplica.invalidate} (a bulk load then costs one build at its end, not a
 * tree update per record). Offline, nothing builds it. Without a source it is kept eagerly.
 *
 * A replica also keeps the relay's resume cursor for it (see `sync-client.ts`): stored
 * durably only after the data it covers, and dropped before that data is.
 */
import { MerkleTree, changeDigest, compilePredicate, lwwDigest, lwwView, shapeKey, type CompiledPredicate, type Change, type CollectionKind, type LwwRecordState, type Shape } from '@outpost/core'

/** A local state of any kind, as the engine holds it. */
export type AnyState = Change['state']

/** Every `[kind, key, state]` of a shape's map held in memory: what its tree is built from when first read. */
export type ReplicaSource = () => Iterable<readonly [CollectionKind, string, AnyState]>

/** One replicated shape; see the module comment. */
export class ShapeReplica {
  /** Stable id: the shape's canonical key (equal shapes share a replica). */
  readonly id: string
  readonly shape: Shape
  /** Whether membership is tracked explicitly (where/limit) rather than "every key of the map". */
  readonly filtered: boolean
  /** Keys in the shape (filtered shapes only). */
  readonly members = new Set<string>()
  readonly #source: ReplicaSource | undefined
  #tree: MerkleTree | undefined
  /**
   * The relay's cursor from the last complete sync of this shape (opaque), loaded from and
   * kept in the store under {@link cursorKey}; undefined when there is none.
   */
  cursor: string | undefined
  /** Bumped whenever the cursor is dropped, so a cursor save that started before the drop does not bring it back. */
  cursorGeneration = 0
  /**
   * A move-out was set aside because a write of ours to that key was pending: this sync did not
   * leave the shape equal to the relay's, so it must not end in a cursor (a resume would never
   * revisit the key); the next sync reconciles by Merkle and moves it out then.
   */
  moveOutDeferred = false
  readonly #test: CompiledPredicate

  constructor(shape: Shape, source?: ReplicaSource) {
    this.shape = shape
    this.#source = source
    this.#tree = source === undefined ? new MerkleTree() : undefined
    this.id = shapeKey(shape)
    this.filtered = shape.where !== undefined || shape.limit !== undefined
    this.#test = compilePredicate(shape.where)
  }

  /** The Merkle tree over the shape's keys, built from the source on first read (see the module comment). */
  get tree(): MerkleTree {
    this.#tree ??= this.#build()
    return this.#tree
  }

  /** True while the tree exists (built, and kept current by {@link track}). @internal */
  get treeBuilt(): boolean {
    return this.#tree !== undefined
  }

  /** Drops the tree (with a source): the next read rebuilds it in one pass. */
  invalidate(): void {
    if (this.#source !== undefined) this.#tree = undefined
  }

  #build(): MerkleTree {
    const entries: [string, string][] = []
    const source = this.#source
    if (source !== undefined) {
      const map = this.shape.map
      for (const [kind, key, state] of source()) if (this.covers(key)) entries.push([key, this.digest(kind, map, key, state)])
    }
    return MerkleTree.from(entries)
  }

  /** The store collection that persists a filtered shape's membership. */
  get membersCollection(): string {
    return `m/${this.id}`
  }

  /** The store metadata key holding this shape's resume cursor. */
  get cursorKey(): string {
    return `cursor/${this.id}`
  }

  /** Digest of one key's state as this shape sees it (projected fields for LWW records). */
  digest(kind: CollectionKind, map: string, key: string, state: AnyState): string {
    if (kind === 'lww') return lwwDigest(state as LwwRecordState, this.shape.fields)
    return changeDigest({ kind, map, key, state } as Change)
  }

  /** Whether a local write to `key` (now `state`) makes it part of this shape. */
  matchesLocal(kind: CollectionKind, state: AnyState): boolean {
    if (!this.filtered) return true
    if (kind !== 'lww') return false
    const view = lwwView(state as LwwRecordState)
    return view !== undefined && this.#test(view)
  }

  /** True when `key` belongs to the shape. */
  covers(key: string): boolean {
    return !this.filtered || this.members.has(key)
  }

  /** Updates the tree after `key` changed to `state` (undefined: gone locally). */
  track(kind: CollectionKind, map: string, key: string, state: AnyState | undefined): void {
    const tree = this.#tree
    // Not built: the build reads memory as it is then.
    if (tree === undefined) return
    if (state === undefined || !this.covers(key)) {
      tree.delete(key)
      return
    }
    tree.set(key, this.digest(kind, map, key, state))
  }

  /** Forgets every key (resync from empty). */
  clear(): void {
    this.members.clear()
    if (this.#source === undefined) this.#tree?.clear()
    else this.#tree = undefined
  }
}
