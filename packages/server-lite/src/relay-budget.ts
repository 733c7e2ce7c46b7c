/**
 * The relay-wide budget of queued incoming work. Each connection's lane on the fair
 * scheduler already stops reading its socket past `limits.maxQueuedBytesPerConnection`, but
 * that bound multiplies with the connections: 500 clients under a 4 MiB budget each may
 * queue 2 GiB, and a stream of tiny frames costs far more memory than its bytes (each
 * queued frame is a view, a work object, closures and a charge record, about
 * {@link FRAME_OVERHEAD_BYTES} once decoded). Under sustained overload
 * (more ops offered than the store commits) nothing else bounds it: L1 on an overloaded
 * machine grew the relay from 119 MB to 1.7 GB in 30 minutes.
 *
 * ```
 *              charge (frame bytes + overhead)             release (work done, commit settled)
 *   lane ────────────────────────────────▶ total ──────────────────────────────────▶
 *                                           │ > maxBytes: engaged
 *                                           │   every lane holding queued work stops reading,
 *                                           │   and so does any other lane as soon as it queues a frame
 *                                           │ ≤ maxBytes / 2: released
 *                                           ▼   every lane it stopped reads again
 * ```
 *
 * A lane it stopped is not read at all (its frames, and its pongs, wait in the socket: TCP
 * backpressure to the client), so what the relay holds is at most `maxBytes` plus what
 * was already read from each socket when it stopped. A lane that had nothing queued still
 * gets its next frame in before it is stopped, so a quiet client's one request is served in
 * its turn rather than starved behind the flood. Time a session spends stopped does not
 * count as silence for the heartbeat (see `session/flow-control.ts`).
 *
 * Each engagement is logged at `warn` and counted in `outpost_relay_budget_engaged_total`;
 * `outpost_queued_bytes`, `outpost_queued_frames` and `outpost_relay_budget_paused_connections`
 * show the state.
 */
import type { Logger } from 'pino'
import type { RelayMetrics } from './metrics'

/**
 * Bytes charged per queued frame on top of its length: what a queued one-change frame costs
 * the relay at worst. Measured with L2 (200 connections × 10 ops/s, heap snapshot of the
 * relay at 13,288 queued frames, 11,180 of them decoded and waiting for the store): about
 * 7 KB of heap per frame once decoded (the `OpsWork`, the parsed change, its write request
 * and `decide` closure, ~18 closures and contexts, promises and reactions, the socket read
 * chunk the frame's bytes still point into), 1–2 KB before. A frame is charged from the
 * moment it is read until its changes are committed, so it is charged the decoded cost.
 */
export const FRAME_OVERHEAD_BYTES = 8 * 1_024

/** What the budget can do to a lane: stop or resume reading its connection. */
export interface BudgetedLane {
  relayPause(paused: boolean): void
}

/** What the budget reports. */
export interface RelayBudgetEvents {
  /** The budget engaged: `total` bytes queued relay-wide, `paused` connections stopped. */
  engaged?(total: number, paused: number): void
  /** The budget released after being engaged for `ms`. */
  released?(total: number, ms: number): void
}

/** The relay-wide budget; see the module comment. */
export class RelayBudget {
  /** Bytes past which the budget engages. */
  readonly maxBytes: number
  readonly #events: RelayBudgetEvents
  readonly #now: () => number
  /** Bytes charged per lane (lanes holding none are absent). */
  readonly #lanes = new Map<BudgetedLane, number>()
  /** Lanes the budget stopped while engaged. */
  readonly #paused = new Set<BudgetedLane>()
  #total = 0
  #frames = 0
  #peak = 0
  #engagedAt: number | undefined

  constructor(maxBytes: number, events: RelayBudgetEvents = {}, now: () => number = Date.now) {
    this.maxBytes = maxBytes
    this.#events = events
    this.#now = now
  }

  /** Bytes charged relay-wide (frames queued, running, or with changes waiting for the store). */
  get queuedBytes(): number {
    return this.#total
  }

  /** Frames charged relay-wide. */
  get queuedFrames(): number {
    return this.#frames
  }

  /** The most bytes ever charged at once. */
  get peakBytes(): number {
    return this.#peak
  }

  /** True while over budget (and until half of it has drained). */
  get engaged(): boolean {
    return this.#engagedAt !== undefined
  }

  /** Connections the budget has stopped reading. */
  get pausedLanes(): number {
    return this.#paused.size
  }

  /** The charge of a frame of `bytes`: its length plus the per-frame overhead. */
  static frameCost(bytes: number): number {
    return bytes + FRAME_OVERHEAD_BYTES
  }

  /** `lane` queued a frame costing `bytes` (already including the overhead). */
  charge(lane: BudgetedLane, bytes: number): void {
    this.#lanes.set(lane, (this.#lanes.get(lane) ?? 0) + bytes)
    this.#total += bytes
    this.#frames++
    if (this.#total > this.#peak) this.#peak = this.#total
    if (this.#engagedAt === undefined && this.#total > this.maxBytes) {
      this.#engagedAt = this.#now()
      // Every lane adding to the total stops reading (its work still drains).
      for (const busy of this.#lanes.keys()) this.#pause(busy)
      this.#events.engaged?.(this.#total, this.#paused.size)
    } else if (this.#engagedAt !== undefined) {
      this.#pause(lane)
    }
  }

  /** A frame of `lane` costing `bytes` is done. */
  release(lane: BudgetedLane, bytes: number): void {
    const left = (this.#lanes.get(lane) ?? 0) - bytes
    if (left > 0) this.#lanes.set(lane, left)
    else this.#lanes.delete(lane)
    this.#total -= bytes
    this.#frames--
    if (this.#engagedAt !== undefined && this.#total <= this.maxBytes / 2) {
      const ms = this.#now() - this.#engagedAt
      this.#engagedAt = undefined
      const paused = [...this.#paused]
      this.#paused.clear()
      for (const each of paused) each.relayPause(false)
      this.#events.released?.(this.#total, ms)
    }
  }

  /** `lane` closed: it is no longer resumed (its charges are released as its work ends). */
  forget(lane: BudgetedLane): void {
    this.#paused.delete(lane)
  }

  #pause(lane: BudgetedLane): void {
    if (this.#paused.has(lane)) return
    this.#paused.add(lane)
    lane.relayPause(true)
  }
}

/**
 * The relay's budget for `limits.maxQueuedBytes`: each engagement is logged at `warn` (and
 * its release at `info`, with how long it lasted) and counted in
 * `outpost_relay_budget_engaged_total`; the queue's state is reported at each `/metrics` scrape.
 */
export function createRelayBudget(maxBytes: number, logger: Logger, metrics: RelayMetrics): RelayBudget {
  const budget = new RelayBudget(maxBytes, {
    engaged(total, paused) {
      metrics.relayBudgetEngaged.inc()
      logger.warn(
        { queuedBytes: total, limit: maxBytes, pausedConnections: paused },
        `relay overloaded: more than ${maxBytes} bytes of received work queued (limits.maxQueuedBytes); stopped reading the connections adding to it until half has drained`,
      )
    },
    released(total, ms) {
      logger.info({ queuedBytes: total, limit: maxBytes, pausedMs: ms }, 'relay budget released: reading every connection again')
    },
  })
  metrics.watchQueue(() => ({ bytes: budget.queuedBytes, frames: budget.queuedFrames, peakBytes: budget.peakBytes, pausedConnections: budget.pausedLanes }))
  return budget
}
