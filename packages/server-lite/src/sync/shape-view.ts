/**
 * A shape as one caller may see it: the members of `shape.where AND rule filter` (bound
 * to the caller's claims), their digests over the projected fields, and the Merkle tree of
 * those digests. Everything a subscriber receives (slices, digests, move-outs) comes from
 * here, so nothing outside the caller's rules can leak through reconciliation.
 *
 * Membership of an LWW record:
 *   - without `limit`: alive and its visible fields match, or a tombstone whose last
 *     values (`lwwLatest`) match — a delete is shown to whoever could see the record;
 *   - with `limit`: among alive matching records, the first `limit` under `orderBy`
 *     (tombstones never occupy a window slot).
 * OR sets and counters have no fields: a shape over them is the whole map, and a map
 * with a row filter is not readable at all (fail closed).
 *
 * Views are shared by every subscription with the same shape and bound filter, updated
 * incrementally on every applied change, and dropped when the last subscription ends.
 */
import {
  MerkleTree,
  andPredicates,
  compareRows,
  compilePredicate,
  isAlive,
  lwwLatest,
  lwwView,
  projectLww,
  type CompiledPredicate,
  type CrdtState,
  type LwwRecordState,
  type Predicate,
  type Row,
  type Shape,
} from '@outpost/core'
import type { Collection } from './collection'
import { stateDigest } from './digest'

/** What one applied change did to a view: keys whose (projected) state subscribers must receive, and keys that left. */
export interface ViewEffect {
  readonly view: ShapeView
  readonly send: readonly string[]
  readonly moveOut: readonly string[]
}

/** One caller-visible shape over a collection; see the module comment. */
export class ShapeView {
  /** Cache key: the shape with the bound filter ANDed into `where`. */
  readonly id: string
  readonly shape: Shape
  readonly tree = new MerkleTree()
  readonly #collection: Collection
  readonly #match: CompiledPredicate
  readonly #filtered: boolean
  readonly #fields: readonly string[] | undefined
  readonly #limit: number | undefined
  readonly #compare: (a: Row, b: Row) => number
  /** With `limit`: every alive matching record, sorted; the window is its first `limit`. */
  #candidates: Row[] = []
  readonly #rows = new Map<string, Row>()
  /** Subscriptions using this view (opaque to the view). */
  readonly subscribers = new Set<unknown>()

  constructor(id: string, collection: Collection, shape: Shape, filter: Predicate | undefined) {
    this.id = id
    this.shape = shape
    this.#collection = collection
    this.#match = compilePredicate(andPredicates(shape.where, filter))
    this.#filtered = filter !== undefined
    this.#fields = shape.fields
    this.#limit = shape.limit
    this.#compare = compareRows(shape.orderBy)
    this.#build()
  }

  #build(): void {
    if (this.#limit === undefined) {
      for (const [key, state] of this.#collection.entries()) {
        if (this.#isMember(state)) this.tree.set(key, this.digest(state))
      }
      return
    }
    for (const [key, state] of this.#collection.entries()) {
      const row = this.#candidateRow(key, state)
      if (row !== undefined) {
        this.#rows.set(key, row)
        this.#candidates.push(row)
      }
    }
    this.#candidates.sort(this.#compare)
    const end = Math.min(this.#limit, this.#candidates.length)
    for (let i = 0; i < end; i++) {
      const key = (this.#candidates[i] as Row).key
      this.tree.set(key, this.digest(this.#collection.get(key) as CrdtState))
    }
  }

  /** The digest of a member's state as this view projects it. */
  digest(state: CrdtState): string {
    return stateDigest(this.#collection.kind ?? 'lww', state, this.#fields)
  }

  /** The state a subscriber receives for `key` (projected), or undefined when it is not a member. */
  memberState(key: string): CrdtState | undefined {
    if (!this.tree.has(key)) return undefined
    const state = this.#collection.get(key)
    if (state === undefined) return undefined
    if (this.#fields !== undefined && this.#collection.kind === 'lww') return projectLww(state as LwwRecordState, this.#fields)
    return state
  }

  /**
   * Whether the caller may know `key` exists but it is not in this view (it does not
   * match `where` or is outside the window). Used to answer a client that holds a key
   * the view dropped with a move-out instead of a push, without revealing hidden records.
   */
  visibleNonMember(key: string, visible: CompiledPredicate): boolean {
    if (this.tree.has(key)) return false
    const state = this.#collection.get(key)
    if (state === undefined) return false
    if (this.#collection.kind !== 'lww') return !this.#filtered
    return visible(lwwLatest(state as LwwRecordState))
  }

  #isMember(state: CrdtState): boolean {
    if (this.#collection.kind !== 'lww') return !this.#filtered
    const lww = state as LwwRecordState
    if (isAlive(lww)) return this.#match(lwwView(lww) ?? {})
    return this.#match(lwwLatest(lww))
  }

  #candidateRow(key: string, state: CrdtState): Row | undefined {
    if (this.#collection.kind !== 'lww') return this.#filtered ? undefined : { key, value: {} }
    const view = lwwView(state as LwwRecordState)
    return view !== undefined && this.#match(view) ? { key, value: view } : undefined
  }

  /** Index of `row` in the sorted candidates (binary search), or where it would go. */
  #position(row: Row): number {
    let lo = 0
    let hi = this.#candidates.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#compare(this.#candidates[mid] as Row, row) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Re-evaluates `key` after its state changed (undefined: removed by GC); returns what subscribers must hear. */
  update(key: string, state: CrdtState | undefined): ViewEffect {
    if (this.#limit === undefined) {
      const member = state !== undefined && this.#isMember(state)
      if (member) {
        const digest = this.digest(state)
        if (this.tree.get(key) === digest) return { view: this, send: [], moveOut: [] }
        this.tree.set(key, digest)
        return { view: this, send: [key], moveOut: [] }
      }
      return { view: this, send: [], moveOut: this.tree.delete(key) ? [key] : [] }
    }
    const old = this.#rows.get(key)
    if (old !== undefined) {
      const at = this.#position(old)
      this.#candidates.splice(at, 1)
      this.#rows.delete(key)
    }
    const row = state === undefined ? undefined : this.#candidateRow(key, state)
    if (row !== undefined) {
      this.#candidates.splice(this.#position(row), 0, row)
      this.#rows.set(key, row)
    }
    // One change shifts the window by at most one slot: only the changed key and the two rows at the window's edge can change membership.
    const send: string[] = []
    const moveOut: string[] = []
    const edge = [key]
    const limit = this.#limit
    const last = this.#candidates[limit - 1]
    const next = this.#candidates[limit]
    if (last !== undefined && last.key !== key) edge.push(last.key)
    if (next !== undefined && next.key !== key) edge.push(next.key)
    for (const k of edge) {
      const candidate = this.#rows.get(k)
      const inWindow = candidate !== undefined && this.#position(candidate) < limit
      if (inWindow) {
        const digest = this.digest(this.#collection.get(k) as CrdtState)
        if (this.tree.get(k) !== digest) {
          this.tree.set(k, digest)
          send.push(k)
        }
      } else if (this.tree.delete(k)) {
        moveOut.push(k)
      }
    }
    return { view: this, send, moveOut }
  }
}
