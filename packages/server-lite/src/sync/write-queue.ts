/**
 * The record write queue: every caller's batch (store requests built by the write pipeline)
 * waits here for a transaction, and each transaction takes the smallest waiting batches
 * first (see {@link WriteQueue.push}). What a transaction does with its requests is the
 * {@link SyncService}'s, passed in as {@link WriteSteps}: the store commit (`commit`), then,
 * once it is durable, the catalog update and fan-out (`publish`).
 *
 * Pipelining: with a store whose transactions run in the order they are started, each
 * seeing the ones before (`pipelined`, LMDB), several transactions are in flight at once —
 * up to {@link MAX_PIPELINED_CHANGES} changes — so transactions started while the store
 * syncs one commit share the next (one fsync for many transactions), instead of each waiting
 * for the fsync of the one before. Each transaction still holds at most
 * `maxTransactionChanges` changes and they are formed one per event turn, so honest writes
 * that arrive meanwhile are taken first. Whatever the store, transactions are published and
 * their batches resolved in the order they were started (per-map sequence order, fan-out in
 * commit order), and a batch cut across transactions has at most one part in flight (the rest
 * of a batch never runs after a part of it failed). Other stores (Postgres: a transaction per
 * call on a pool) get one transaction at a time.
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
  /** True while a part of this batch is in a transaction not yet settled. */
  busy: boolean
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

/**
 * Most changes in transactions started and not yet settled, when the store pipelines them:
 * about what the store may have to decide in one commit (CPU in one event turn, for LMDB,
 * which runs the callbacks of the transactions it batches back to back).
 */
export const MAX_PIPELINED_CHANGES = 512

/**
 * While small writes come in (one started within {@link SMALL_WRITES_RECENT_MS}), the window
 * shrinks to one large transaction (plus small writes): LMDB syncs with its write lock held,
 * so a commit's decisions all run on the event loop before its fsync, and a small write
 * waits for every one in its commit. Then a small write commits with small writes only, right
 * after the large transaction in progress, as with one transaction at a time (S6: 2x the honest
 * ack latency with two transactions' worth in flight). Bulk-only traffic gets the whole window.
 */
export const SMALL_WRITES_RECENT_MS = 250

/** A durable transaction: one outcome per request, and what makes it visible (the catalog update and fan-out). */
export interface Committed {
  readonly outcomes: WriteOutcome[]
  /** Called once, in transaction order. */
  publish(): void
}

/**
 * Starts the store transaction of `requests` (each with its writer); resolves once it is
 * durable. Called in transaction order; the sync service hands transactions to the store in
 * the order of these calls.
 */
export type CommitWrites = (requests: readonly PipelineRequest[], origins: readonly object[]) => Promise<Committed>

/** Options of {@link WriteQueue}. */
export interface WriteQueueOptions {
  /** Most changes per transaction (default {@link MAX_TRANSACTION_CHANGES}). */
  readonly maxTransactionChanges?: number | undefined
  /** True when the store runs transactions in the order they start, each seeing the ones before: several may be in flight. */
  readonly pipelined?: boolean | undefined
  /** Most changes in flight when pipelined (default {@link MAX_PIPELINED_CHANGES}). */
  readonly maxPipelinedChanges?: number | undefined
}

/** Waiting record writes and the transaction loop; see the module comment. */
export class WriteQueue {
  readonly #commit: CommitWrites
  readonly #track: (done: Promise<unknown>) => void
  readonly #most: number
  /** Most changes in flight: {@link MAX_PIPELINED_CHANGES} when pipelined, else one transaction's worth. */
  readonly #window: number
  readonly #pipelined: boolean
  /** A write of at most this many changes is small: it may start when the window is full. */
  readonly #small: number
  /** Record writes waiting for a transaction (see {@link push}). */
  #queue: WriteJob[] = []
  /** Transactions and changes started and not yet settled; whether a turn to start one is scheduled. */
  #transactions = 0
  #changes = 0
  #scheduled = false
  /** When a transaction holding a small write last started (see {@link SMALL_WRITES_RECENT_MS}). */
  #lastSmall = Number.NEGATIVE_INFINITY
  /** Settles once the last transaction started is published (the next publishes after it). */
  #published: Promise<void> = Promise.resolve()

  /** `track` is told of every transaction in progress (the service's barrier waits for them). */
  constructor(commit: CommitWrites, track: (done: Promise<unknown>) => void, options: WriteQueueOptions = {}) {
    this.#commit = commit
    this.#track = track
    this.#most = options.maxTransactionChanges ?? MAX_TRANSACTION_CHANGES
    this.#pipelined = options.pipelined === true
    this.#small = Math.max(1, Math.floor(this.#most / SMALL_RATIO))
    this.#window = this.#pipelined ? Math.max(this.#most, options.maxPipelinedChanges ?? MAX_PIPELINED_CHANGES) : this.#most
  }

  /** True while writes wait or a transaction is running. */
  get busy(): boolean {
    return this.#queue.length > 0 || this.#transactions > 0
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
      this.#queue.push({ requests, origin, resolve, reject, done: 0, busy: false, outcomes: [] })
      this.#kick()
    })
  }

  /**
   * Changes the next transaction may take: a full one while the window has room; when it is
   * full (pipelined), only a small write (at most maxTransactionChanges / {@link SMALL_RATIO}
   * changes, taken whole), which then joins the next commit instead of waiting for one to settle.
   */
  #room(): { changes: number; whole: boolean } {
    const window = performance.now() - this.#lastSmall < SMALL_WRITES_RECENT_MS ? Math.min(this.#window, this.#most + this.#small) : this.#window
    if (this.#transactions === 0 || this.#changes + this.#most <= window) return { changes: this.#most, whole: false }
    return { changes: this.#pipelined ? this.#small : 0, whole: true }
  }

  /** Schedules the next transaction when writes wait and the window has room for them. */
  #kick(): void {
    if (this.#scheduled || this.#queue.length === 0) return
    const room = this.#room()
    if (room.changes === 0 || (room.whole && !this.#queue.some((job) => !job.busy && job.requests.length - job.done <= room.changes))) return
    this.#scheduled = true
    // Within one event turn, batches that arrive together join the same transaction; one transaction per turn.
    setImmediate(() => {
      this.#scheduled = false
      const parts = this.#take(this.#room())
      if (parts.length > 0) this.#start(parts)
      this.#kick()
    })
  }

  /**
   * The next transaction: waiting batches smallest first, up to {@link MAX_TRANSACTION_CHANGES}
   * changes; a batch larger than what is left is cut, its rest waits for the next
   * transaction (each change's outcome is its own, so a batch need not commit as one).
   */
  #take(limit: { changes: number; whole: boolean }): { job: WriteJob; from: number; to: number }[] {
    // A batch with a part in flight waits for it (its parts commit in order, none after one failed).
    const order = this.#queue.filter((job) => !job.busy).sort((a, b) => a.requests.length - a.done - (b.requests.length - b.done))
    const parts: { job: WriteJob; from: number; to: number }[] = []
    const most = limit.changes
    let room = most
    for (const job of order) {
      const left = job.requests.length - job.done
      if (limit.whole && left > room) break
      // Small writes do not wait for the commit of a batch many times their size: it gets the next transaction.
      if (room <= 0 || (parts.length > 0 && left > SMALL_RATIO * (most - room))) break
      const take = Math.min(room, left)
      parts.push({ job, from: job.done, to: job.done + take })
      job.done += take
      job.busy = true
      room -= take
    }
    this.#queue = this.#queue.filter((job) => job.done < job.requests.length)
    return parts
  }

  /** Starts the transaction of `parts`; it is published and resolves its batches after the one started before it. */
  #start(parts: readonly { job: WriteJob; from: number; to: number }[]): void {
    const requests = parts.flatMap(({ job, from, to }) => job.requests.slice(from, to))
    if (parts.some(({ job }) => job.requests.length <= this.#small)) this.#lastSmall = performance.now()
    const origins = parts.flatMap(({ job, from, to }) => job.requests.slice(from, to).map(() => job.origin))
    this.#transactions++
    this.#changes += requests.length
    let committed: Promise<Committed>
    try {
      committed = this.#commit(requests, origins)
    } catch (error) {
      committed = Promise.reject(error)
    }
    const before = this.#published
    const done = committed
      .then(
        async (result) => {
          await before
          return result
        },
        async (error: unknown) => {
          await before
          throw error
        },
      )
      .then(
        (result) => this.#settle(parts, result, undefined),
        (error: unknown) => this.#settle(parts, undefined, error),
      )
    this.#published = done
    this.#track(done)
    void done.finally(() => {
      this.#transactions--
      this.#changes -= requests.length
      this.#kick()
    })
  }

  /** A transaction settled (after every one started before it): publish it, then resolve or fail its batches. */
  #settle(parts: readonly { job: WriteJob; from: number; to: number }[], result: Committed | undefined, error: unknown): void {
    for (const { job } of parts) job.busy = false
    let outcomes = result?.outcomes
    if (result !== undefined) {
      try {
        result.publish()
      } catch (failure) {
        outcomes = undefined
        error = failure
      }
    }
    if (outcomes === undefined) {
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
