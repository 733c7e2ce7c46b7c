/**
 * An in-memory map from key to CRDT state for one collection: the merge point every
 * replica (worker, relay, tests) funnels changes through. `apply` says whether a change
 * taught it anything, so callers skip no-op writes and fan-out.
 */
import type { CollectionKind } from '../types'
import { CRDT_TYPES, type CrdtStates, type CrdtType } from './change'

/** Key → state of one collection, merged on every `apply`. */
export class CrdtMap<S> {
  readonly #type: CrdtType<S>
  readonly #states = new Map<string, S>()

  /** A map for states of `type` (see {@link CRDT_TYPES}, or {@link CrdtMap.of}). */
  constructor(type: CrdtType<S>) {
    this.#type = type
  }

  /** A map for the given collection kind. */
  static of<K extends CollectionKind>(kind: K): CrdtMap<CrdtStates[K]> {
    return new CrdtMap(CRDT_TYPES[kind] as CrdtType<CrdtStates[K]>)
  }

  /** The collection kind this map holds. */
  get kind(): CollectionKind {
    return this.#type.kind
  }

  /**
   * Merges `state` into the key's state. Returns the merged state when that changed
   * anything, `undefined` when `state` added nothing (a duplicate, a replay, an old change).
   */
  apply(key: string, state: S): S | undefined {
    const current = this.#states.get(key)
    const merged = this.#type.merge(current ?? this.#type.empty(), state)
    if (current === undefined ? this.#type.isEmpty(merged) : this.#type.equals(current, merged)) return undefined
    this.#states.set(key, merged)
    return merged
  }

  /** The key's merged state, or undefined when nothing was applied to it. */
  get(key: string): S | undefined {
    return this.#states.get(key)
  }

  /** True when the key holds a state. */
  has(key: string): boolean {
    return this.#states.has(key)
  }

  /** The keys in insertion order. */
  keys(): IterableIterator<string> {
    return this.#states.keys()
  }

  /** `[key, state]` pairs in insertion order. */
  entries(): IterableIterator<[string, S]> {
    return this.#states.entries()
  }

  /** How many keys hold a state. */
  get size(): number {
    return this.#states.size
  }

  /** Drops a key locally (tombstone GC, a shape's move-out); it is not a delete for anyone else. Returns whether it was there. */
  delete(key: string): boolean {
    return this.#states.delete(key)
  }
}
