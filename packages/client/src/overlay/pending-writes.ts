/**
 * This tab's LWW writes that the engine has not answered yet, in the order they were made.
 * Live queries and live records of the written map (see `query-overlay.ts`,
 * `record-overlay.ts`) show them on top of the worker's last answer, so a tab sees its own
 * write without waiting for the round trip to the worker and back.
 *
 * A write leaves this list when its engine call settles:
 *  - answered (durable locally): the engine merged it into memory and emitted every live
 *    query it changed *before* it committed and answered (merge → microtask notify →
 *    IndexedDB commit → answer), so by the time the answer reaches the tab, the worker's
 *    rows already hold the write and the overlay has nothing left to add;
 *  - refused (validation, VALUE_TOO_LARGE, quota, a timeout): the write is taken back from
 *    every view at once.
 * This needs the transport to deliver the engine's callbacks (each on its own comlink
 * port) and its answers in the order the engine sent them. In the page (in-page mode) it
 * is certain; between a tab and its SharedWorker, Chromium delivered them in order in
 * every test (thousands of writes in bursts), though the HTML spec promises no order
 * across ports. A dedicated worker's link (leader-tab mode) was seen delivering answers
 * ahead of rows, so the client makes no overlay there (see client.ts). A reordering
 * would show the worker's previous rows until its next emission, never wrong rows for good.
 * Other tabs never see this list: they get the worker's emission as before.
 */
import type { RecordValue } from '@outpost/core'

/** What a pending write does to its record. */
export type PendingOp =
  /** The whole record (fields not given are removed): it can be evaluated anywhere. */
  | { readonly type: 'set'; readonly value: RecordValue }
  /** Only these fields: needs the rest of the record to be evaluated. */
  | { readonly type: 'update'; readonly patch: RecordValue }
  | { readonly type: 'delete' }

/** One write this tab made and the engine has not answered yet. */
export interface PendingWrite {
  /** Per-tab sequence number: later writes have larger ones. */
  readonly seq: number
  readonly map: string
  readonly key: string
  readonly op: PendingOp
}

/** A live view that shows pending writes of one map (or of one key of it). */
export interface PendingWriteTarget {
  /** `write` was just made (it is already in the list). */
  added(write: PendingWrite): void
  /** `write` left the list: answered (`ok`) or refused. */
  settled(write: PendingWrite, ok: boolean): void
}

/** The registry of one client's pending writes, shared by every map handle of the client. */
export class PendingWrites {
  #nextSeq = 1
  /** map → seq → write; a Map keeps insertion order, which is seq order. */
  readonly #byMap = new Map<string, Map<number, PendingWrite>>()
  /** map → targets watching every key of it (live queries). */
  readonly #mapTargets = new Map<string, Set<PendingWriteTarget>>()
  /** map → key → targets watching that key alone (live records), so a write wakes only its own record. */
  readonly #keyTargets = new Map<string, Map<string, Set<PendingWriteTarget>>>()

  /** Records a write and shows it to the views of its map. */
  begin(map: string, key: string, op: PendingOp): PendingWrite {
    const write: PendingWrite = { seq: this.#nextSeq++, map, key, op }
    let writes = this.#byMap.get(map)
    if (writes === undefined) this.#byMap.set(map, (writes = new Map()))
    writes.set(write.seq, write)
    for (const target of this.#targetsOf(map, key)) target.added(write)
    return write
  }

  /** The engine answered `write` (`ok`) or refused it; idempotent. */
  settle(write: PendingWrite, ok: boolean): void {
    const writes = this.#byMap.get(write.map)
    if (writes === undefined || !writes.delete(write.seq)) return
    if (writes.size === 0) this.#byMap.delete(write.map)
    for (const target of this.#targetsOf(write.map, write.key)) target.settled(write, ok)
  }

  /** The pending writes of `map`, oldest first. */
  of(map: string): readonly PendingWrite[] {
    const writes = this.#byMap.get(map)
    return writes === undefined ? [] : [...writes.values()]
  }

  /** The pending writes of `key` in `map`, oldest first. */
  ofKey(map: string, key: string): readonly PendingWrite[] {
    const writes = this.#byMap.get(map)
    if (writes === undefined) return []
    const out: PendingWrite[] = []
    for (const write of writes.values()) if (write.key === key) out.push(write)
    return out
  }

  /** How many writes of `map` are pending. */
  count(map: string): number {
    return this.#byMap.get(map)?.size ?? 0
  }

  /** Tells `target` about writes to `map` (only to `key` when given). Returns the remover. */
  watch(target: PendingWriteTarget, map: string, key?: string): () => void {
    let set: Set<PendingWriteTarget> | undefined
    if (key === undefined) {
      set = this.#mapTargets.get(map)
      if (set === undefined) this.#mapTargets.set(map, (set = new Set()))
    } else {
      let byKey = this.#keyTargets.get(map)
      if (byKey === undefined) this.#keyTargets.set(map, (byKey = new Map()))
      set = byKey.get(key)
      if (set === undefined) byKey.set(key, (set = new Set()))
    }
    const targets = set
    targets.add(target)
    return () => {
      targets.delete(target)
      if (targets.size > 0) return
      if (key === undefined) this.#mapTargets.delete(map)
      else {
        const byKey = this.#keyTargets.get(map)
        byKey?.delete(key)
        if (byKey?.size === 0) this.#keyTargets.delete(map)
      }
    }
  }

  /** Snapshot of the targets, so a target that unsubscribes while being told does not disturb the loop. */
  #targetsOf(map: string, key: string): PendingWriteTarget[] {
    const all = this.#mapTargets.get(map)
    const own = this.#keyTargets.get(map)?.get(key)
    if (own === undefined) return all === undefined ? [] : [...all]
    return all === undefined ? [...own] : [...all, ...own]
  }
}
