/**
 * The optimistic layer of one live query: the worker's rows with this tab's pending writes
 * applied (see `projected-view.ts`). A write reaches the query's listeners synchronously,
 * inside `set`/`update`/`delete`, before the call to the worker is even sent: no microtask
 * hop, no round trip. The worker's rows stay the truth (remote merges, LWW conflicts,
 * writes the relay refused all arrive there), and the overlay only re-applies, on top of
 * each of them, the writes the engine has not answered yet. When the worker's rows equal
 * what is shown (its emission of the write, then the answer), listeners are not called again.
 *
 *   write ──▶ PendingWrites ──added──▶ rows = worker rows + pending writes ──▶ listeners
 *   worker emission ─────────onBase──▶ rows = new worker rows + pending writes
 *   engine answer ───────────settled─▶ ok: the worker rows already hold it (see pending-writes.ts)
 *                                      refused: taken back at once
 *
 * A worker emission that does not hold a write yet (an older one, or one caused by another
 * tab) cannot make the row flicker back: the write stays pending, and so applied, until
 * its answer, which the engine sends only after its emission. A newer emission that can
 * no longer place a write the tab already shows (see `#adopt`) is held back until that
 * write is answered, for the same reason.
 */
import { compileQuery, validateQuery, valuesEqual, type CompiledQuery, type Query, type Row } from '@outpost/core'
import type { LiveLayer } from '../live-store'
import type { PendingWrite, PendingWriteTarget, PendingWrites } from './pending-writes'
import { ProjectedView } from './projected-view'

/** A {@link LiveLayer} over one live query's rows. */
export class QueryOverlay implements LiveLayer<readonly Row[]>, PendingWriteTarget {
  readonly #writes: PendingWrites
  readonly #map: string
  /** Compiled once; undefined when the query is invalid: the engine reports why, and this layer stays out of the way. */
  readonly #query: CompiledQuery | undefined
  #show: ((rows: readonly Row[]) => void) | undefined
  /** The worker's last rows. */
  #base: readonly Row[] | undefined
  /**
   * What is shown: a base with the pending writes applied; undefined while none is
   * pending (the base is shown as is). Normally over `#base`; over an older base while
   * `#deferred` (see {@link QueryOverlay.#adopt}).
   */
  #projected: ProjectedView | undefined
  #deferred = false
  /** What listeners were last given. */
  #shown: readonly Row[] | undefined
  /** True when `#shown` may differ from the base (pending writes were in it). */
  #shownProjected = false

  constructor(writes: PendingWrites, map: string, query: Query) {
    this.#writes = writes
    this.#map = map
    const valid = validOrUndefined(query)
    this.#query = valid === undefined ? undefined : compileQuery(valid)
  }

  start(show: (rows: readonly Row[]) => void): () => void {
    this.#show = show
    const unwatch = this.#query === undefined ? undefined : this.#writes.watch(this, this.#map)
    return () => {
      unwatch?.()
      this.#show = undefined
      this.#base = undefined
      this.#projected = undefined
      this.#deferred = false
      this.#shown = undefined
      this.#shownProjected = false
    }
  }

  onBase(rows: readonly Row[]): readonly Row[] {
    this.#base = rows
    this.#adopt(false)
    return this.#present()
  }

  added(write: PendingWrite): void {
    // Before the first emission there is nothing to apply it to; the first one gets it applied on top.
    if (this.#base === undefined) return
    if (this.#projected === undefined) this.#projected = this.#project()
    // Also while deferred: the write goes on top of what is shown.
    else if (!this.#projected.apply(write)) return
    this.#flush()
  }

  settled(_write: PendingWrite, ok: boolean): void {
    if (this.#base === undefined) return
    if (this.#writes.count(this.#map) === 0) {
      this.#projected = undefined
      this.#deferred = false
    } else if (!ok) {
      // Taken back at once, even if that un-shows another pending write the new base cannot place.
      this.#adopt(true)
    } else if (this.#deferred) {
      // The write that held the base back may be the one answered.
      this.#adopt(false)
    }
    // Otherwise: answered while other writes are pending; the base already holds it, so
    // leaving it applied changes nothing; the next emission or the last answer rebuilds.
    else return
    this.#flush()
  }

  /**
   * Shows the latest base with the pending writes on top — unless that would un-show a
   * pending write that is shown now: a new base can know less than the one before (a
   * full window whose last row moved up can no longer place a row that sorted after
   * it), and the row would flicker back to its old value. Then what is shown stays (with
   * later writes applied on top) until the write is answered, when the base holds it.
   */
  #adopt(force: boolean): void {
    const next = this.#project()
    const shown = this.#projected
    if (!force && shown !== undefined && next !== undefined) {
      for (const write of this.#writes.of(this.#map)) {
        if (!shown.waits(write.seq) && next.waits(write.seq)) {
          this.#deferred = true
          return
        }
      }
    }
    this.#projected = next
    this.#deferred = false
  }

  #project(): ProjectedView | undefined {
    const base = this.#base
    if (base === undefined || this.#query === undefined) return undefined
    const pending = this.#writes.of(this.#map)
    if (pending.length === 0) return undefined
    const view = new ProjectedView(this.#query, base)
    for (const write of pending) view.apply(write)
    return view
  }

  /** The rows to show now; the array already shown when their content did not change. */
  #present(): readonly Row[] {
    const projected = this.#projected !== undefined
    const rows = this.#projected?.rows() ?? (this.#base as readonly Row[])
    const shown = this.#shown
    // Worker rows replacing worker rows always differ (the engine emits only on change): no need to compare.
    const same = shown !== undefined && (projected || this.#shownProjected) && rowsEqual(shown, rows)
    this.#shownProjected = projected
    if (same) return shown
    this.#shown = rows
    return rows
  }

  /**
   * Shows what changed at once. Synchronous on purpose: the tab's own write reaches its
   * listeners before `set` returns (a loop of writes emits once per write that changes
   * the visible rows). A listener that writes again re-enters here; `#shown` is already
   * current, and the live store stops handing out a value a nested call superseded.
   */
  #flush(): void {
    const show = this.#show
    if (show === undefined || this.#base === undefined) return
    const before = this.#shown
    const rows = this.#present()
    if (rows !== before) show(rows)
  }
}

/** Same keys in the same order with equal values. */
export function rowsEqual(a: readonly Row[], b: readonly Row[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Row
    const y = b[i] as Row
    if (x.key !== y.key || (x.value !== y.value && !valuesEqual(x.value, y.value))) return false
  }
  return true
}

function validOrUndefined(query: Query): Query | undefined {
  try {
    return validateQuery(query)
  } catch (error) {
    return ignoreInvalidQuery(error)
  }
}

/** The engine rejects the same query with the same typed error and reports it to the subscriber. */
function ignoreInvalidQuery(_error: unknown): undefined {
  return undefined
}
