/**
 * The record write queue: every caller's batch (store requests built by the write pipeline)
 * waits here for a transaction, and one transaction at a time takes the smallest waiting
 * batches first (see {@link WriteQueue.push}). What a transaction does with its requests
 * (the store commit, then the fan-out) is the {@link SyncService}'s, passed in as `apply`.
 */
import type { WriteOutcome } from '@outpost/core'
import type { PipelineRequest } from './write-pipeline'

/** One caller's batch waiting for a transaction. */
interface WriteJob {
  readonly requests: readonly PipelineRequest[]
  readonly origin: object
  resolve(outcomes: WriteOutcome[]): void
  reject(error: unknown): void
  /** Requests handed to a transaction so far (a large batch is cut across transactions). */
  done: number
  /** Outcomes so far, by request index. */
  readonly outcomes: WriteOutcome[]
}

/**
 * Most changes one store transaction takes by default (`limits.maxTransactionChanges`; a
 * larger batch is cut across transactions). Small on purpose: every change's `decide` runs synchronously inside the transaction, so
 * this bounds how long a commit holds the event loop and how long a small write waits for
 * the transaction ahead of it (the fair scheduler's pieces are as large; see fair-scheduler.ts).
 */
export const MAX_TRANSACTION_CHANGES = 64

/** A transaction holding n changes takes no batch of more than SMALL_RATIO × n (see {@link WriteQueue.push}). */
export const SMALL_RATIO = 8

/** Applies one transaction's requests (each with its writer); resolves with one outcome per request. */
export type ApplyWrites = (requests: readonly PipelineRequest[], origins: readonly object[]) => Promise<WriteOutcome[]>

/** Waiting record writes and the transaction loop; see the module comment. */
export class WriteQueue {
  readonly #apply: ApplyWrites
  readonly #track: (done: Promise<unknown>) => void
  readonly #maxTransactionChanges: number | undefined
  /** Record writes waiting for a transaction (see {@link push}), and whether one is running. */
  #queue: WriteJob[] = []
  #committing = false

  /** `track` is told of every transaction in progress (the service's barrier waits for them). */
  constructor(apply: ApplyWrites, track: (done: Promise<unknown>) => void, maxTransactionChanges: number | undefined) {
    this.#apply = apply
    this.#track = track
    this.#maxTransactionChanges = maxTransactionChanges
  }

  /** True while writes wait or a transaction is running. */
  get busy(): boolean {
    return this.#queue.length > 0 || this.#committing
  }

  /**
   * Stores `requests` (built by the write pipeline) on behalf of `origin`, then fans the
   * applied changes out. Resolves with one outcome per request once its transaction is
   * durable; rejects (for all of them) when the store fails.
   *
   * Writes wait in one queue; one transaction at a time takes the smallest waiting batches
   * first, up to {@link MAX_TRANSACTION_CHANGES} changes (a larger batch is cut across
   * transactions). So many small writes share one fsync (group commit), and a client sending
   * huge batches delays others by at most one transaction, never by its whole backlog. A
   * transaction does not add a batch more than {@link SMALL_RATIO} times what it holds, so a
   * one-change write commits on its own instead of with 63 flooder changes.
   */
  push(requests: readonly PipelineRequest[], origin: object): Promise<WriteOutcome[]> {
    if (requests.length === 0) return Promise.resolve([])
    return new Promise<WriteOutcome[]>((resolve, reject) => {
      this.#queue.push({ requests, origin, resolve, reject, done: 0, outcomes: [] })
      this.#kick()
    })
  }

  #kick(): void {
    if (this.#committing || this.#queue.length === 0) return
    this.#committing = true
    // Within one event turn, batches that arrive together join the same transaction.
    setImmediate(() => {
      const parts = this.#take()
      const done = this.#commitParts(parts)
      this.#track(done)
      void done.finally(() => {
        this.#committing = false
        this.#kick()
      })
    })
  }

  /**
   * The next transaction: waiting batches smallest first, up to {@link MAX_TRANSACTION_CHANGES}
   * changes; a batch larger than what is left is cut, its rest waits for the next
   * transaction (each change's outcome is its own, so a batch need not commit as one).
   */
  #take(): { job: WriteJob; from: number; to: number }[] {
    const order = [...this.#queue].sort((a, b) => a.requests.length - a.done - (b.requests.length - b.done))
    const parts: { job: WriteJob; from: number; to: number }[] = []
    const most = this.#maxTransactionChanges ?? MAX_TRANSACTION_CHANGES
    let room = most
    for (const job of order) {
      const left = job.requests.length - job.done
      // Small writes do not wait for the commit of a batch many times their size: it gets the next transaction.
      if (room <= 0 || (parts.length > 0 && left > SMALL_RATIO * (most - room))) break
      const take = Math.min(room, left)
      parts.push({ job, from: job.done, to: job.done + take })
      job.done += take
      room -= take
    }
    this.#queue = this.#queue.filter((job) => job.done < job.requests.length)
    return parts
  }

  async #commitParts(parts: readonly { job: WriteJob; from: number; to: number }[]): Promise<void> {
    const requests = parts.flatMap(({ job, from, to }) => job.requests.slice(from, to))
    const origins = parts.flatMap(({ job, from, to }) => job.requests.slice(from, to).map(() => job.origin))
    let outcomes: WriteOutcome[]
    try {
      outcomes = await this.#apply(requests, origins)
    } catch (error) {
      for (const { job } of parts) {
        // The rest of a cut batch must not run after part of it failed.
        this.#queue = this.#queue.filter((waiting) => waiting !== job)
        job.reject(error)
      }
      return
    }
    let at = 0
    for (const { job, from, to } of parts) {
      for (let i = from; i < to; i++) job.outcomes[i] = outcomes[at++] as WriteOutcome
      // Parts of a batch commit in order, one transaction after another: its last part completes it.
      if (to === job.requests.length) job.resolve(job.outcomes)
    }
  }
}
