/**
 * One map's live state in the relay: every key's merged CRDT state, a Merkle tree over
 * their full digests, and the shape views that subscribers use. Loaded lazily from the
 * store on first use; the kind (`lww` | `or` | `counter`) is fixed by the first write and
 * kept in store metadata.
 */
import { CrdtMap, MerkleTree, type CollectionKind, type CrdtState, type Predicate, type Shape } from '@outpost/core'
import { stateDigest } from './digest'
import { ShapeView, type ViewEffect } from './shape-view'

/** The store collection that holds a map's records. */
export function storeCollection(map: string): string {
  return `m:${map}`
}

/** The metadata key holding a map's kind. */
export function kindMetaKey(map: string): string {
  return `kind:${map}`
}

/** A map's in-memory state; see the module comment. */
export class Collection {
  readonly map: string
  #kind: CollectionKind | undefined
  #states: CrdtMap<CrdtState> | undefined
  /** Full-map digests (no projection, no filter): the map's own root. */
  readonly tree = new MerkleTree()
  readonly #views = new Map<string, ShapeView>()

  constructor(map: string, kind: CollectionKind | undefined) {
    this.map = map
    this.#kind = kind
    this.#states = kind === undefined ? undefined : (CrdtMap.of(kind) as CrdtMap<CrdtState>)
  }

  /** The collection kind, or undefined before the first write. */
  get kind(): CollectionKind | undefined {
    return this.#kind
  }

  /** Fixes the kind (first write). Returns false when the map already holds another kind. */
  claimKind(kind: CollectionKind): boolean {
    if (this.#kind === undefined) {
      this.#kind = kind
      this.#states = CrdtMap.of(kind) as CrdtMap<CrdtState>
      // Views built while the kind was unknown were empty, and still are.
      return true
    }
    return this.#kind === kind
  }

  /** Number of keys. */
  get size(): number {
    return this.#states?.size ?? 0
  }

  /** The merged state of `key`. */
  get(key: string): CrdtState | undefined {
    return this.#states?.get(key)
  }

  /** Every `[key, state]`. */
  entries(): IterableIterator<[string, CrdtState]> {
    return (this.#states ?? new Map<string, CrdtState>()).entries()
  }

  /** Loads a stored state (start-up): no view effects. */
  load(key: string, state: CrdtState): void {
    const merged = this.#states?.apply(key, state)
    if (merged !== undefined) this.tree.set(key, stateDigest(this.#kind as CollectionKind, merged))
  }

  /**
   * Merges `state` into `key`. Returns the merged state and what every view must tell its
   * subscribers, or undefined when the change taught the relay nothing.
   */
  apply(key: string, state: CrdtState): { merged: CrdtState; effects: ViewEffect[] } | undefined {
    const merged = this.#states?.apply(key, state)
    if (merged === undefined) return undefined
    this.tree.set(key, stateDigest(this.#kind as CollectionKind, merged))
    const effects: ViewEffect[] = []
    for (const view of this.#views.values()) {
      const effect = view.update(key, merged)
      if (effect.send.length > 0 || effect.moveOut.length > 0) effects.push(effect)
    }
    return { merged, effects }
  }

  /** Drops `key` (tombstone GC): views forget it silently, clients collect their own tombstones. */
  collect(key: string): void {
    if (this.#states?.delete(key) !== true) return
    this.tree.delete(key)
    for (const view of this.#views.values()) view.update(key, undefined)
  }

  /** The shared view for `shape` under `filter`, built on first use. */
  acquireView(id: string, shape: Shape, filter: Predicate | undefined): ShapeView {
    let view = this.#views.get(id)
    if (view === undefined) {
      view = new ShapeView(id, this, shape, filter)
      this.#views.set(id, view)
    }
    return view
  }

  /** True when the map holds nothing and nobody watches it: caching it would only cost memory. */
  get idle(): boolean {
    return this.#kind === undefined && this.#views.size === 0
  }

  /** Forgets a view nobody subscribes to any more, so idle shapes cost no memory. */
  releaseView(view: ShapeView): void {
    if (view.subscribers.size === 0 && this.#views.get(view.id) === view) this.#views.delete(view.id)
  }
}
