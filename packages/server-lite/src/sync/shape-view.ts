/**
 * A shape as one caller may see it: the records of `shape.where AND rule filter` (bound to
 * the caller's claims), projected to `shape.fields`, optionally the first `limit` under
 * `orderBy`. Everything a subscriber receives (slices, replays, digests, move-outs) is
 * decided here, so nothing outside the caller's rules can leak.
 *
 * Membership of an LWW record:
 *   - without `limit`: alive and its visible fields match, or a tombstone whose last
 *     values (`lwwLatest`) match — a delete is shown to whoever could see the record;
 *   - with `limit`: among alive matching records, the first `limit` under `orderBy`
 *     (tombstones never occupy a window slot).
 * OR sets and counters have no fields: a shape over them is the whole map, and a map
 * with a row filter is not readable at all (fail closed).
 *
 * Records live in the store, not here. A view without `limit` decides membership from a
 * record's state alone, so a write's effect needs only the record before and after it.
 * A view with `limit` keeps its matching rows in memory (the window's candidates), built
 * from one scan of the store. A view that must answer Merkle reconciliation keeps a tree of
 * its members' digests, built on first need and kept current while it has subscribers —
 * except the plain view of a whole map, whose tree is the map's stored leaf sums.
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
  stateDigest,
  type CollectionKind,
  type CompiledPredicate,
  type CrdtState,
  type LwwRecordState,
  type Predicate,
  type RecordValue,
  type Row,
  type Shape,
  type SyncRecord,
  type Value,
} from '@outpost/core'

/** What one applied change does to a view: keys whose state subscribers must receive, and keys that left. */
export interface ViewEffect {
  readonly send: readonly string[]
  readonly moveOut: readonly string[]
}

const NO_EFFECT: ViewEffect = Object.freeze({ send: [], moveOut: [] })

/** Visits every stored record of the view's map once (a paged store scan). */
export type RecordSource = (visit: (record: SyncRecord) => void) => Promise<void>

/** One caller-visible shape over a map; see the module comment. */
export class ShapeView {
  /** Cache key: the shape with the bound filter ANDed into `where`. */
  readonly id: string
  readonly shape: Shape
  readonly #kind: () => CollectionKind
  /** The rule filter bound to the caller's claims (undefined: every record). */
  readonly filter: Predicate | undefined
  /** Subscriptions using this view (opaque to the view). */
  readonly subscribers = new Set<unknown>()
  readonly #match: CompiledPredicate
  /** The rule filter alone: who may know a record exists. */
  readonly #visible: CompiledPredicate
  readonly #filtered: boolean
  /** Neither `where` nor a rule filter: every record is a member (no view of its fields is built to ask). */
  readonly #everything: boolean
  readonly #fields: readonly string[] | undefined
  readonly #limit: number | undefined
  readonly #compare: (a: Row, b: Row) => number
  /** With `limit`: every alive matching record, sorted; the window is its first `limit`. */
  #candidates: Row[] = []
  readonly #rows = new Map<string, Row>()
  /** Members of the window (with `limit`), by key. */
  readonly #window = new Set<string>()
  /** Members' digests, once a reconciliation needed them (never for the plain view). */
  #tree: MerkleTree | undefined
  #built: Promise<void> | undefined
  #treeBuilt: Promise<void> | undefined
  /** Keys written while a scan runs, one set per running scan. */
  readonly #scans = new Set<Set<string>>()

  /** `kind` reads the map's kind when needed: a view may exist before the map's first write fixes it. */
  constructor(id: string, shape: Shape, filter: Predicate | undefined, kind: () => CollectionKind) {
    this.id = id
    this.shape = shape
    this.#kind = kind
    this.filter = filter
    const predicate = andPredicates(shape.where, filter)
    this.#match = compilePredicate(predicate)
    this.#everything = predicate === undefined
    this.#visible = compilePredicate(filter)
    this.#filtered = filter !== undefined
    this.#fields = shape.fields
    this.#limit = shape.limit
    this.#compare = compareRows(shape.orderBy)
  }

  /** The map's kind (`lww` until its first write says otherwise). */
  get kind(): CollectionKind {
    return this.#kind()
  }

  /** The whole map, unfiltered and unprojected: its Merkle tree is the map's stored one. */
  get plain(): boolean {
    return this.shape.where === undefined && this.filter === undefined && this.#fields === undefined && this.#limit === undefined
  }

  /** True for a `limit` window (kept in memory). */
  get windowed(): boolean {
    return this.#limit !== undefined
  }

  /** Loads what the view keeps in memory: a window's candidates (always) and the member tree (when asked). Idempotent. */
  async build(source: RecordSource, withTree: boolean): Promise<void> {
    if (this.windowed) {
      this.#built ??= this.#scan(source, (record) => {
        const row = this.#candidateRow(record.key, record.state)
        if (row !== undefined) this.#rows.set(row.key, row)
      }).then(() => {
        this.#candidates = [...this.#rows.values()].sort(this.#compare)
        this.#window.clear()
        const end = Math.min(this.#limit as number, this.#candidates.length)
        for (let i = 0; i < end; i++) this.#window.add((this.#candidates[i] as Row).key)
      })
      await this.#built
    }
    if (withTree && !this.plain) {
      this.#treeBuilt ??= (() => {
        const tree = new MerkleTree()
        this.#tree = tree
        return this.#scan(source, (record) => {
          if (this.#isMemberKey(record.key, record.state)) tree.set(record.key, this.digest(record.state))
        })
      })()
      await this.#treeBuilt
    }
  }

  /**
   * Runs a store scan while writes keep arriving: a key `update` touched during the scan
   * already holds its newest state here, so a page read before that write cannot bring
   * the old state back.
   */
  async #scan(source: RecordSource, visit: (record: SyncRecord) => void): Promise<void> {
    const touched = new Set<string>()
    this.#scans.add(touched)
    try {
      await source((record) => {
        if (!touched.has(record.key)) visit(record)
      })
    } finally {
      this.#scans.delete(touched)
    }
  }

  /** The member tree (built by {@link build} with `withTree`), or undefined for the plain view. */
  get tree(): MerkleTree | undefined {
    return this.#tree
  }

  /** The digest of a member's state as this view projects it. */
  digest(state: CrdtState): string {
    return stateDigest(this.kind, state as never, this.#fields)
  }

  /** The state a subscriber receives (projected). */
  project(state: CrdtState): CrdtState {
    if (this.#fields !== undefined && this.kind === 'lww') return projectLww(state as LwwRecordState, this.#fields)
    return state
  }

  /** Whether `key` with `state` is a member now (a window member for `limit` views, which must be built). */
  isMember(key: string, state: CrdtState | undefined): boolean {
    if (state === undefined) return false
    return this.#isMemberKey(key, state)
  }

  #isMemberKey(key: string, state: CrdtState): boolean {
    if (this.windowed) return this.#window.has(key)
    return this.#matches(state)
  }

  #matches(state: CrdtState): boolean {
    if (this.kind !== 'lww') return !this.#filtered
    // Same answer as below (an absent predicate matches everything), without building the record's view per record of a slice.
    if (this.#everything) return true
    const lww = state as LwwRecordState
    if (isAlive(lww)) return this.#match(lwwView(lww) ?? {})
    return this.#match(lwwLatest(lww))
  }

  /**
   * Whether the caller may know `key` exists although it is not a member (it does not match
   * `where`, or is outside the window): its record is visible under the rule filter.
   */
  visibleNonMember(key: string, state: CrdtState | undefined, visible: CompiledPredicate): boolean {
    if (state === undefined || this.isMember(key, state)) return false
    if (this.kind !== 'lww') return !this.#filtered
    return visible(lwwLatest(state as LwwRecordState))
  }

  #candidateRow(key: string, state: CrdtState): Row | undefined {
    if (this.kind !== 'lww') return this.#filtered ? undefined : { key, value: {} }
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

  /**
   * What a change of `key` from `previous` to `next` (undefined: removed) means to
   * subscribers. A window may also move another key in or out: those keys are in the
   * effect too (the caller reads their states).
   */
  update(key: string, previous: CrdtState | undefined, next: CrdtState | undefined): ViewEffect {
    for (const touched of this.#scans) touched.add(key)
    if (!this.windowed) {
      const was = previous !== undefined && this.#matches(previous)
      const is = next !== undefined && this.#matches(next)
      if (is) {
        const digest = this.digest(next)
        if (was && this.digest(previous) === digest) return NO_EFFECT
        this.#tree?.set(key, digest)
        return { send: [key], moveOut: [] }
      }
      if (!was) return NO_EFFECT
      this.#tree?.delete(key)
      return { send: [], moveOut: [key] }
    }
    return this.#updateWindow(key, next)
  }

  /**
   * What a change means to subscribers when the record before it is not known (a change
   * another relay made, caught up from the log): a member is sent; a non-member is moved
   * out when subscribers may know of it — visible under the rule filter now, or, by
   * `before` (the filtered fields the log kept), before the change.
   */
  updateUnknown(key: string, next: CrdtState | undefined, before: Value | undefined): ViewEffect {
    for (const touched of this.#scans) touched.add(key)
    if (this.windowed) return this.#updateWindow(key, next)
    if (next !== undefined && this.#matches(next)) {
      this.#tree?.set(key, this.digest(next))
      return { send: [key], moveOut: [] }
    }
    this.#tree?.delete(key)
    const visibleNow = next !== undefined && (this.kind !== 'lww' ? !this.#filtered : this.#visible(lwwLatest(next as LwwRecordState)))
    const visibleBefore = before !== undefined && typeof before === 'object' && before !== null && this.#visible(before as RecordValue)
    return visibleNow || visibleBefore ? { send: [], moveOut: [key] } : NO_EFFECT
  }

  #updateWindow(key: string, next: CrdtState | undefined): ViewEffect {
    const old = this.#rows.get(key)
    if (old !== undefined) {
      this.#candidates.splice(this.#position(old), 1)
      this.#rows.delete(key)
    }
    const row = next === undefined ? undefined : this.#candidateRow(key, next)
    if (row !== undefined) {
      this.#candidates.splice(this.#position(row), 0, row)
      this.#rows.set(key, row)
    }
    // One change shifts the window by at most one slot: only the changed key and the two rows at the window's edge can change membership.
    const send: string[] = []
    const moveOut: string[] = []
    const limit = this.#limit as number
    const edge = new Set([key])
    const last = this.#candidates[limit - 1]
    const after = this.#candidates[limit]
    if (last !== undefined) edge.add(last.key)
    if (after !== undefined) edge.add(after.key)
    for (const k of edge) {
      const candidate = this.#rows.get(k)
      const inWindow = candidate !== undefined && this.#position(candidate) < limit
      if (inWindow) {
        // The changed key is sent whenever it is in the window (its state changed); an edge key only when it enters.
        if (k === key || !this.#window.has(k)) send.push(k)
        this.#window.add(k)
      } else if (this.#window.delete(k)) {
        moveOut.push(k)
        this.#tree?.delete(k)
      }
    }
    return { send, moveOut }
  }

  /** Records a member's current digest in the tree (a window member sent after `update`). */
  track(key: string, state: CrdtState): void {
    if (this.#tree !== undefined && this.isMember(key, state)) this.#tree.set(key, this.digest(state))
  }
}
