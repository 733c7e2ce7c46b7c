/**
 * The optimistic layer of one live record (`map.record(key)`): the worker's value of the
 * record with this tab's pending writes to that key applied, in order. The tab holds the
 * record's whole visible value (or knows it is absent), so every write can be evaluated:
 * `set` replaces it, `delete` removes it, `update` merges its fields (into nothing when
 * the record is absent or deleted: only the fields stamped after the tombstone are alive).
 * The worker's value stays the truth; see `query-overlay.ts` for the life of a write
 * (delivered synchronously, as there).
 */
import { recordFromEntries, valuesEqual, type RecordValue } from '@outpost/core'
import type { LiveLayer } from '../live-store'
import type { PendingWrite, PendingWriteTarget, PendingWrites } from './pending-writes'

/** A {@link LiveLayer} over one record's value. */
export class RecordOverlay implements LiveLayer<RecordValue | undefined>, PendingWriteTarget {
  readonly #writes: PendingWrites
  readonly #map: string
  readonly #key: string
  #show: ((value: RecordValue | undefined) => void) | undefined
  #base: { readonly value: RecordValue | undefined } | undefined
  #shown: { readonly value: RecordValue | undefined } | undefined
  #shownProjected = false

  constructor(writes: PendingWrites, map: string, key: string) {
    this.#writes = writes
    this.#map = map
    this.#key = key
  }

  start(show: (value: RecordValue | undefined) => void): () => void {
    this.#show = show
    const unwatch = this.#writes.watch(this, this.#map, this.#key)
    return () => {
      unwatch()
      this.#show = undefined
      this.#base = undefined
      this.#shown = undefined
      this.#shownProjected = false
    }
  }

  onBase(value: RecordValue | undefined): RecordValue | undefined {
    this.#base = { value }
    return this.#present()
  }

  added(_write: PendingWrite): void {
    this.#flush()
  }

  settled(_write: PendingWrite, _ok: boolean): void {
    this.#flush()
  }

  #present(): RecordValue | undefined {
    const pending = this.#writes.ofKey(this.#map, this.#key)
    let value = (this.#base as { readonly value: RecordValue | undefined }).value
    for (const { op } of pending) {
      if (op.type === 'set') value = op.value
      else if (op.type === 'delete') value = undefined
      else value = value === undefined ? op.patch : recordFromEntries([...Object.entries(value), ...Object.entries(op.patch)])
    }
    const projected = pending.length > 0
    const shown = this.#shown
    const same = shown !== undefined && (projected || this.#shownProjected) && sameValue(shown.value, value)
    this.#shownProjected = projected
    if (same) return shown.value
    this.#shown = { value }
    return value
  }

  /** Shows the value at once if it changed (see `QueryOverlay.#flush`). */
  #flush(): void {
    const show = this.#show
    if (show === undefined || this.#base === undefined) return
    const before = this.#shown
    const value = this.#present()
    if (this.#shown !== before) show(value)
  }
}

function sameValue(a: RecordValue | undefined, b: RecordValue | undefined): boolean {
  if (a === b) return true
  return a !== undefined && b !== undefined && valuesEqual(a, b)
}
