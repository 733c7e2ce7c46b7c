/**
 * What the relay keeps in memory per map — never its records: the map's kind and newest
 * sequence number, its shape views (shared by the subscriptions that ask for the same
 * shape under the same bound rule filter), and, while someone reconciles the whole map by
 * Merkle, the map's tree rebuilt from the store's leaf sums (at most 65,536 small rows).
 *
 * Bounded: a map with no view and no tree is forgotten after {@link IDLE_MAPS} others, and
 * a map's tree is dropped once no view of it is subscribed.
 */
import { NodeSums, SYNC_TREE_DEPTH, entryHash, leafPathOf, stateDigest, type CollectionKind, type CrdtState, type SyncStore } from '@outpost/core'
import type { ShapeView } from './shape-view'

/** Idle maps (no view, no tree) kept before the least recently used is forgotten. */
const IDLE_MAPS = 1_000

/** One map's in-memory bookkeeping; see the module comment. */
export class MapState {
  readonly map: string
  /** Fixed by the map's first write; undefined while the map is empty. */
  kind: CollectionKind | undefined
  /**
   * Every change numbered up to this one has been fanned out by this relay (its own writes,
   * and others' caught up from the store's log): the cursor a subscription can be given.
   */
  head: number
  /** Own changes numbered above `head` (fanned out already, skipped when catching up). */
  readonly ahead = new Set<number>()
  /** The log answers cursors above this. */
  floor: number
  /** Views by id (shape + bound filter). */
  readonly views = new Map<string, ShapeView>()
  #tree: NodeSums | undefined
  #loadingTree: Promise<NodeSums> | undefined
  /** Changes committed while the tree loads, replayed onto it when they are newer than what it read. */
  #pending: { seq: number; key: string; previous: CrdtState | undefined; state: CrdtState | undefined }[] = []
  /** Bumped when the tree is forgotten, so a load started before does not install a stale tree. */
  #generation = 0

  constructor(map: string, kind: CollectionKind | undefined, head: number, floor: number) {
    this.map = map
    this.kind = kind
    this.head = head
    this.floor = floor
  }

  /** The whole map's Merkle nodes when loaded already (nothing is read). */
  get loadedTree(): NodeSums | undefined {
    return this.#tree
  }

  /** The whole map's Merkle nodes (unprojected digests), loaded from the store's leaf sums on first use. */
  tree(store: SyncStore): Promise<NodeSums> {
    if (this.#tree !== undefined) return Promise.resolve(this.#tree)
    const generation = this.#generation
    this.#loadingTree ??= store.leafSums(this.map).then(({ head, leaves }) => {
      const sums = new NodeSums(SYNC_TREE_DEPTH)
      for (const [leaf, sum] of leaves) sums.addLeaf(leaf, sum)
      if (generation !== this.#generation) return sums
      this.#tree = sums
      this.#loadingTree = undefined
      // The sums cover every change up to `head`; changes committed later were held back.
      for (const change of this.#pending.splice(0)) if (change.seq > head) this.#patch(sums, change.key, change.previous, change.state)
      return sums
    })
    return this.#loadingTree
  }

  /** Applies a committed change to the in-memory tree (when loaded) and the bookkeeping. */
  applied(kind: CollectionKind, key: string, previous: CrdtState | undefined, state: CrdtState | undefined, seq: number): void {
    this.kind = kind
    if (seq === this.head + 1) this.head = seq
    else if (seq > this.head) this.ahead.add(seq)
    this.#settleAhead()
    const tree = this.#tree
    if (tree !== undefined) this.#patch(tree, key, previous, state)
    else if (this.#loadingTree !== undefined) this.#pending.push({ seq, key, previous, state })
  }

  /**
   * A change another relay made (caught up from the log): only its new state is known, so
   * a loaded tree cannot be patched and is reloaded on next use.
   */
  caughtUp(kind: CollectionKind, seq: number): void {
    this.kind = kind
    if (seq > this.head) this.head = seq
    this.#settleAhead()
    this.forgetTree()
  }

  /** Moves `head` over own changes that are now contiguous with it. */
  #settleAhead(): void {
    while (this.ahead.delete(this.head + 1)) this.head++
    for (const seq of this.ahead) if (seq <= this.head) this.ahead.delete(seq)
  }

  #patch(tree: NodeSums, key: string, previous: CrdtState | undefined, state: CrdtState | undefined): void {
    const kind = this.kind as CollectionKind
    const leaf = leafPathOf(key, SYNC_TREE_DEPTH)
    if (previous !== undefined) tree.apply(leaf, entryHash(key, stateDigest(kind, previous as never)), -1)
    if (state !== undefined) tree.apply(leaf, entryHash(key, stateDigest(kind, state as never)), 1)
  }

  /** Drops the in-memory tree (records were removed outside a write, e.g. tombstone GC); it reloads on next use. */
  forgetTree(): void {
    this.#generation++
    this.#tree = undefined
    this.#loadingTree = undefined
    this.#pending = []
  }

  /** True when nothing subscribes to the map: its memory can go. */
  get idle(): boolean {
    for (const view of this.views.values()) if (view.subscribers.size > 0) return false
    return true
  }

  /** Drops views nobody subscribes to, and the tree when no view is left. */
  release(): void {
    for (const [id, view] of this.views) if (view.subscribers.size === 0) this.views.delete(id)
    if (this.views.size === 0 && this.#loadingTree === undefined) this.#tree = undefined
  }
}

/** Every map the relay has looked at recently; see the module comment. */
export class MapCatalog {
  readonly #store: SyncStore
  readonly #maps = new Map<string, MapState>()
  readonly #loading = new Map<string, Promise<MapState>>()

  constructor(store: SyncStore) {
    this.#store = store
  }

  /** The map's state, read from the store's bookkeeping on first use (one read however many callers ask). */
  get(map: string): Promise<MapState> {
    const ready = this.#maps.get(map)
    if (ready !== undefined) {
      // Most recently used last, for eviction.
      this.#maps.delete(map)
      this.#maps.set(map, ready)
      return Promise.resolve(ready)
    }
    let loading = this.#loading.get(map)
    if (loading === undefined) {
      loading = this.#store.mapInfo(map).then((info) => {
        this.#loading.delete(map)
        const existing = this.#maps.get(map)
        if (existing !== undefined) return existing
        const state = new MapState(map, info?.kind, info?.head ?? 0, info?.floor ?? 0)
        this.#maps.set(map, state)
        this.#evict()
        return state
      })
      this.#loading.set(map, loading)
    }
    return loading
  }

  /** Maps someone here subscribes to (their changes made elsewhere must be caught up). */
  *watched(): Generator<MapState> {
    for (const state of this.#maps.values()) if (!state.idle) yield state
  }

  /** The map's state if it is in memory. */
  peek(map: string): MapState | undefined {
    return this.#maps.get(map)
  }

  #evict(): void {
    if (this.#maps.size <= IDLE_MAPS) return
    for (const [name, state] of this.#maps) {
      if (this.#maps.size <= IDLE_MAPS) return
      if (state.views.size === 0) this.#maps.delete(name)
    }
  }
}
