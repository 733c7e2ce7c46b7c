/**
 * The worker's rows of one live query with this tab's pending writes applied on top,
 * evaluated by core's own query code (`QueryView`: `compilePredicate`, `compareRows` and
 * the `limit` window), so the tab and the worker cannot disagree on what a record matches
 * or where it sorts.
 *
 * What the tab cannot know, it does not guess; that write waits for the worker's answer:
 *  - an `update` of a record the tab does not hold in full (not in the rows, and not
 *    written whole by an earlier pending `set`): its other fields are in the worker only,
 *    so whether it matches, and where it sorts, cannot be told here;
 *  - a write that takes a row out of a full `limit` window: the row that moves up into
 *    the window is one the worker never sent to this tab.
 * A `set` carries the whole record and a `delete` removes it, so both can always be
 * evaluated (within the limits above).
 */
import { QueryView, recordFromEntries, type CompiledQuery, type RecordValue, type Row } from '@outpost/core'
import type { PendingWrite } from './pending-writes'

/** Query rows as the worker sent them, plus the pending writes applied so far. */
export class ProjectedView {
  readonly #view: QueryView
  readonly #query: CompiledQuery
  /**
   * The last row of a full window (as many rows as `limit`): rows sorting after it exist
   * only in the worker, so the tab knows every matching row up to here and none past it.
   */
  readonly #boundary: Row | undefined
  /** Whole records the pending writes determined (`null`: deleted), whether or not they match. */
  readonly #known = new Map<string, RecordValue | null>()
  /** Writes (by seq) this view could not evaluate: they wait for the worker. */
  readonly #waiting = new Set<number>()

  /**
   * `base` is the worker's result for the query: matching rows in order, at most `limit`
   * (so loading it sorts nothing). `query` is compiled once per live query, not per view.
   */
  constructor(query: CompiledQuery, base: readonly Row[]) {
    this.#query = query
    this.#view = new QueryView(query)
    this.#view.load(base)
    this.#boundary = base.length >= query.limit ? base[base.length - 1] : undefined
  }

  /** Applies one pending write; returns true when the visible rows changed. */
  apply(write: PendingWrite): boolean {
    const { key, op } = write
    let record: RecordValue | null
    if (op.type === 'set') record = op.value
    else if (op.type === 'delete') record = null
    else {
      const current = this.#known.has(key) ? this.#known.get(key) : this.#view.get(key)?.value
      // The rest of the record is in the worker only: its answer will show this update.
      if (current === undefined) {
        this.#waiting.add(write.seq)
        return false
      }
      // After a delete only the patched fields are alive (they are stamped after the tombstone).
      record = current === null ? op.patch : recordFromEntries([...Object.entries(current), ...Object.entries(op.patch)])
    }
    this.#known.set(key, record)

    let placed = record !== null && this.#query.test(record) ? record : undefined
    // Past the boundary of a full window the tab does not know which rows lie in between.
    if (placed !== undefined && this.#boundary !== undefined && this.#query.compare({ key, value: placed }, this.#boundary) > 0) placed = undefined
    const before = this.#view.get(key)?.value
    const changed = this.#view.apply(key, placed)
    if (this.#view.matchCount < this.#query.limit && this.#boundary !== undefined) {
      // The row left a full window and the one that should move up into it was never sent
      // here: show the window as it was until the worker answers.
      this.#view.apply(key, before)
      this.#waiting.add(write.seq)
      return false
    }
    return changed
  }

  /** True when write `seq` was applied here but could not be evaluated (see the module comment). */
  waits(seq: number): boolean {
    return this.#waiting.has(seq)
  }

  /** The visible rows: matching, in order, at most `limit`. The same array until they change. */
  rows(): readonly Row[] {
    return this.#view.rows()
  }
}
