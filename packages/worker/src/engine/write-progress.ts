/**
 * Write progress: who watches which write (a write handle's `relay` / `persisted` /
 * rejected promises in a tab), and which writes were sent on the current connection.
 * A watcher learns every state its write has already reached at once, then each later one.
 */
import type { SerializedError } from '@outpost/core'
import type { WriteConcern, WriteRejection } from '../engine-api'
import type { Outbox } from '../outbox'
import type { RejectionLog } from '../rejections'
import { safeCall } from './callbacks'

type Watcher = (event: WriteConcern | WriteRejection) => void

/** Watchers of writes still in the outbox. */
export class WriteProgress {
  readonly #outbox: Outbox
  readonly #rejections: RejectionLog
  /** The next op id the committer hands out: every lower id was written. */
  readonly #nextOpId: () => number
  readonly #watchers = new Map<number, Watcher[]>()
  readonly #sentOps = new Set<number>()

  constructor(outbox: Outbox, rejections: RejectionLog, nextOpId: () => number) {
    this.#outbox = outbox
    this.#rejections = rejections
    this.#nextOpId = nextOpId
  }

  /** Calls `onProgress` for write `opId` as it reaches 'relay' and 'persisted', or once when it was refused. */
  watch(opId: number, onProgress: Watcher): void {
    if (this.#outbox.get(opId) === undefined) {
      const refused = this.#rejections.errorOf(opId)
      if (refused !== undefined) safeCall(onProgress, { rejected: refused })
      else if (opId < this.#nextOpId()) {
        safeCall(onProgress, 'relay')
        safeCall(onProgress, 'persisted')
      }
      return
    }
    if (this.#sentOps.has(opId)) safeCall(onProgress, 'relay')
    const list = this.#watchers.get(opId) ?? []
    list.push(onProgress)
    this.#watchers.set(opId, list)
  }

  /** The writes went to the relay. */
  sent(opIds: readonly number[]): void {
    for (const opId of opIds) {
      if (this.#sentOps.has(opId)) continue
      this.#sentOps.add(opId)
      for (const w of this.#watchers.get(opId) ?? []) safeCall(w, 'relay')
    }
  }

  /** The relay persisted the write: its watchers hear it last. */
  persisted(opId: number): void {
    this.#finish(opId, 'persisted')
  }

  /** The relay refused the write for good: its watchers hear why, last. */
  refused(opId: number, error: SerializedError): void {
    this.#finish(opId, { rejected: error })
  }

  #finish(opId: number, event: WriteConcern | WriteRejection): void {
    this.#sentOps.delete(opId)
    const watchers = this.#watchers.get(opId)
    this.#watchers.delete(opId)
    for (const w of watchers ?? []) safeCall(w, event)
  }
}
