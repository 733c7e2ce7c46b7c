/**
 * The relay's fair scheduler: one {@link Lane} per connection, one scheduler per relay.
 * Everything a connection asks of the relay (a frame to decode, a piece of an `ops` batch
 * to validate and hand to the store) is a {@link Work} queued on its lane, run in steps.
 *
 * ```
 *   frame ──push──▶ lane queue ──▶ ring of lanes ──deficit round robin──▶ step ──▶ yield (setImmediate)
 *                  (bytes charged;                  (one turn per lane,           │
 *                   over budget:                     quantum = pieceUnits)        └─ units in flight
 *                   stop reading)                                                    until the store settles them
 * ```
 *
 * Why: a flooding connection's 2,000-change frame used to be decoded, validated and handed
 * to the store in one synchronous turn, and its changes filled whole store transactions, so
 * an honest one-change write waited behind all of it. Here:
 *
 * - **Pieces.** A step costs a *weight* (scheduler units, about one change's CPU: a frame's
 *   decode weighs its bytes / {@link BYTES_PER_UNIT}, a piece of an `ops` batch its number
 *   of changes, at most `pieceUnits`). A tick runs steps until it has spent `tickUnits`, then
 *   yields to the event loop, so sockets are read between pieces.
 * - **Round robin by cost (deficit round robin).** Each visit gives a lane `pieceUnits` of
 *   credit; it runs steps while its credit covers the next one, then goes to the back of the
 *   ring. A lane that decodes 300 KB frames therefore gets its turn as often as one that
 *   writes one change, but each turn costs it as much as it weighs: it cannot take more than
 *   its share of the relay's CPU. A lane whose queue was empty joins at the front, so a
 *   writer that was idle is served next (it has taken nothing meanwhile).
 * - **In flight.** A step may hand *units* (changes) to the store; they count until their
 *   commit settles. A step that would put units in flight waits while its lane holds
 *   `laneWindow` units, so a connection has at most that many decoded changes waiting for
 *   the store (the store takes the smallest waiting batches first, so an honest change
 *   joins the next transaction whatever the flooders have queued).
 * - **Byte budget.** A lane counts the bytes of the frames queued on it and not yet done
 *   (an `ops` frame until every change of it is committed); past `budgetBytes` it asks its
 *   transport to stop reading, and to read again once half has drained. A flood waits in
 *   the flooder's socket, not in the relay's memory.
 *
 * - **Relay-wide budget.** With a {@link RelayBudget}, every lane's charges also count toward
 *   one relay-wide total; past it the budget stops reading the lanes that add to it
 *   (`relay-budget.ts`), so the bound does not multiply with the connections.
 *
 * Only one work of a lane runs at a time and a lane's works run in order, so a connection's
 * frames are handled in the order they arrived.
 */

import type { BudgetedLane, RelayBudget } from './relay-budget'

/** Frame bytes that weigh one scheduler unit (about the encoded size of one small change). */
export const BYTES_PER_UNIT = 128

/** The cost of a work's next step. */
export interface StepCost {
  /** CPU the step takes, in scheduler units (about one change each). */
  readonly weight: number
  /** Units the step puts in flight (changes handed to the store); 0 for none. */
  readonly units: number
}

/** Counts `units` in flight until `settled` settles. */
export type TrackInFlight = (units: number, settled: Promise<unknown>) => void

/** A queued piece of a connection's work, run in steps. */
export interface Work {
  /** The next step's cost. */
  next(): StepCost
  /**
   * Runs the next step; returns (or resolves to) true while steps remain. A step that puts
   * units in flight reports them through `track`. Returning a promise holds the lane (not the
   * scheduler) until it settles.
   */
  step(track: TrackInFlight): boolean | Promise<boolean>
}

/** Options of {@link FairScheduler}. */
export interface FairSchedulerOptions {
  /** Credit per lane per visit, and the most units one piece should weigh (default 64). */
  readonly pieceUnits?: number
  /** Units one tick may spend before yielding to the event loop (default 2 × pieceUnits). */
  readonly tickUnits?: number
  /** Units one lane may have in flight (default 2 × pieceUnits). */
  readonly laneWindow?: number
  /** How a tick is deferred (default `setImmediate`: after the event loop's I/O). */
  readonly defer?: (run: () => void) => void
  /** The relay-wide budget every lane's charges count toward (none: per-lane budgets only). */
  readonly budget?: RelayBudget
}

/** What a lane tells its connection. */
export interface LaneHooks {
  /** Bytes of queued work past which the lane asks to stop reading. */
  readonly budgetBytes: number
  /** Stop (`true`) or resume (`false`) reading the peer. */
  pause(paused: boolean): void
  /** A step threw or rejected: the work is dropped (its bytes released) and this is called. */
  failed(error: unknown): void
  /** Stop (`true`) or resume (`false`) reading the peer for the relay-wide budget. */
  relayPause?(paused: boolean): void
}

/** A connection's queue of work; see the module comment. */
export class Lane implements BudgetedLane {
  readonly #scheduler: FairScheduler
  readonly #hooks: LaneHooks
  readonly #queue: Work[] = []
  /** Bytes charged for each queued or running work, and what it put in flight so far. */
  readonly #charges = new Map<Work, { bytes: number; inFlight: Promise<unknown>[] }>()
  #queuedBytes = 0
  #paused = false
  #running = false
  #closed = false
  #idle: { promise: Promise<void>; resolve: () => void } | undefined
  /** @internal Deficit round robin credit (units). */
  credit = 0
  /** @internal Units this lane has in flight. */
  inFlight = 0

  /** @internal Created by {@link FairScheduler.lane}. */
  constructor(scheduler: FairScheduler, hooks: LaneHooks) {
    this.#scheduler = scheduler
    this.#hooks = hooks
  }

  /** Queues `work` for a frame of `bytes` (charged until the work is done and its units have settled). */
  push(work: Work, bytes: number): void {
    if (this.#closed) return
    const wasIdle = !this.busy
    this.#queue.push(work)
    this.#charges.set(work, { bytes, inFlight: [] })
    this.#queuedBytes += bytes
    this.#scheduler.budget?.charge(this, bytes)
    if (!this.#paused && this.#queuedBytes > this.#hooks.budgetBytes) {
      this.#paused = true
      this.#hooks.pause(true)
    }
    if (!this.#running) this.#scheduler.ready(this, wasIdle)
  }

  /** Bytes of frames queued, running or with changes in flight. */
  get queuedBytes(): number {
    return this.#queuedBytes
  }

  /** True while the lane has asked its peer to stop sending (over its byte budget). */
  get paused(): boolean {
    return this.#paused
  }

  /** True while a work is queued or a step is running. */
  get busy(): boolean {
    return this.#queue.length > 0 || this.#running
  }

  /** True while a step runs asynchronously (the lane is out of the ring meanwhile). */
  get running(): boolean {
    return this.#running
  }

  /** Resolves once no work is queued or running (changes may still be in flight to the store). */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve()
    if (this.#idle === undefined) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      this.#idle = { promise, resolve }
    }
    return this.#idle.promise
  }

  /** Drops queued work (releasing its bytes) and leaves the scheduler; a running step finishes. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    const dropped = this.#queue.splice(this.#running ? 1 : 0)
    for (const work of dropped) this.#finish(work)
    this.#scheduler.forget(this)
    this.#scheduler.budget?.forget(this)
    if (!this.busy) this.#settleIdle()
  }

  /** @internal The cost of the next step, or undefined when nothing is queued. */
  peek(): StepCost | undefined {
    return this.#queue[0]?.next()
  }

  /**
   * @internal Runs the head work's next step. Returns true when the step completed
   * synchronously; otherwise `resumed` is called once it has.
   */
  run(track: TrackInFlight, resumed: () => void): boolean {
    const work = this.#queue[0] as Work
    const tracked: TrackInFlight = (units, settled) => {
      this.#charges.get(work)?.inFlight.push(settled)
      track(units, settled)
    }
    const after = (more: boolean): void => {
      if (!more) {
        if (this.#queue[0] === work) this.#queue.shift()
        this.#finish(work)
      }
      if (!this.busy) this.#settleIdle()
    }
    const fail = (error: unknown): void => {
      after(false)
      this.#hooks.failed(error)
    }
    let result: boolean | Promise<boolean>
    try {
      result = work.step(tracked)
    } catch (error) {
      fail(error)
      return true
    }
    if (typeof result === 'boolean') {
      after(result)
      return true
    }
    this.#running = true
    result.then(
      (more) => {
        this.#running = false
        after(more)
      },
      (error: unknown) => {
        this.#running = false
        fail(error)
      },
    ).finally(resumed)
    return false
  }

  /** A work is done: its bytes are released once everything it put in flight has settled. */
  #finish(work: Work): void {
    const charge = this.#charges.get(work)
    if (charge === undefined) return
    this.#charges.delete(work)
    if (charge.inFlight.length === 0) this.#release(charge.bytes)
    else void Promise.allSettled(charge.inFlight).then(() => this.#release(charge.bytes))
  }

  /** @internal Called by the relay-wide budget. */
  relayPause(paused: boolean): void {
    if (!this.#closed || !paused) this.#hooks.relayPause?.(paused)
  }

  #release(bytes: number): void {
    this.#queuedBytes -= bytes
    this.#scheduler.budget?.release(this, bytes)
    // Hysteresis: read again at half the budget, so a flooder is not paused and resumed on every frame.
    if (this.#paused && this.#queuedBytes <= this.#hooks.budgetBytes / 2) {
      this.#paused = false
      this.#hooks.pause(false)
    }
  }

  #settleIdle(): void {
    const idle = this.#idle
    this.#idle = undefined
    idle?.resolve()
  }
}

/** The relay-wide scheduler; see the module comment. */
export class FairScheduler {
  /** Credit per lane per visit; the most units one piece should weigh. */
  readonly pieceUnits: number
  /** The relay-wide budget of queued work, if any. */
  readonly budget: RelayBudget | undefined
  readonly #tickUnits: number
  readonly #laneWindow: number
  readonly #defer: (run: () => void) => void
  /** Lanes with queued work and no step running, in turn order. */
  #ring: Lane[] = []
  #inFlight = 0
  #scheduled = false

  constructor(options: FairSchedulerOptions = {}) {
    this.pieceUnits = options.pieceUnits ?? 64
    this.#tickUnits = options.tickUnits ?? 2 * this.pieceUnits
    this.#laneWindow = options.laneWindow ?? 2 * this.pieceUnits
    this.#defer = options.defer ?? ((run) => void setImmediate(run))
    this.budget = options.budget
  }

  /** A new lane (one per connection). */
  lane(hooks: LaneHooks): Lane {
    return new Lane(this, hooks)
  }

  /** Units in flight relay-wide. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** Lanes waiting for a turn (tests, metrics). */
  get waiting(): number {
    return this.#ring.length
  }

  /** @internal `lane` has work; `first`: it was idle, so it is served next. */
  ready(lane: Lane, first: boolean): void {
    if (lane.running || this.#ring.includes(lane)) return
    lane.credit = 0
    if (first) this.#ring.unshift(lane)
    else this.#ring.push(lane)
    this.#schedule()
  }

  /** @internal `lane` closed. */
  forget(lane: Lane): void {
    this.#ring = this.#ring.filter((l) => l !== lane)
  }

  #schedule(): void {
    if (this.#scheduled || this.#ring.length === 0) return
    this.#scheduled = true
    this.#defer(() => {
      this.#scheduled = false
      this.#tick()
    })
  }

  #canFly(lane: Lane, units: number): boolean {
    if (units === 0) return true
    return lane.inFlight === 0 || lane.inFlight + units <= this.#laneWindow
  }

  #track(lane: Lane): TrackInFlight {
    return (units, settled) => {
      lane.inFlight += units
      this.#inFlight += units
      const land = (): void => {
        lane.inFlight -= units
        this.#inFlight -= units
        this.#schedule()
      }
      settled.then(land, land)
    }
  }

  /** Runs lanes' steps in turn until `tickUnits` are spent or every lane waits for the store, then yields. */
  #tick(): void {
    let spent = 0
    /** Lanes in a row found waiting for the store: once it is all of them, wait for units to land. */
    let blocked = 0
    while (this.#ring.length > 0 && spent < this.#tickUnits) {
      if (blocked >= this.#ring.length) return
      const lane = this.#ring.shift() as Lane
      const cost = lane.peek()
      if (cost === undefined) continue
      if (!this.#canFly(lane, cost.units)) {
        // Waiting for the store keeps its credit; it is served when units land.
        this.#ring.push(lane)
        blocked++
        continue
      }
      blocked = 0
      lane.credit += this.pieceUnits
      if (lane.credit < cost.weight) {
        // A heavy step (a big frame's decode) waits until its lane has saved credit enough.
        this.#ring.push(lane)
        continue
      }
      spent += this.#turn(lane, this.#tickUnits - spent)
    }
    this.#schedule()
  }

  /** Runs `lane`'s steps while its credit covers them (at most `budget` units); returns the units spent. */
  #turn(lane: Lane, budget: number): number {
    let spent = 0
    for (;;) {
      const cost = lane.peek()
      if (cost === undefined) {
        lane.credit = 0
        return spent
      }
      if (cost.weight > lane.credit || spent >= budget || !this.#canFly(lane, cost.units)) {
        this.#ring.push(lane)
        return spent
      }
      lane.credit -= cost.weight
      spent += cost.weight
      const sync = lane.run(this.#track(lane), () => {
        // An asynchronous step finished: the lane rejoins (first while its turn's credit lasts).
        if (lane.peek() === undefined) return
        if (lane.credit > 0) this.#ring.unshift(lane)
        else this.#ring.push(lane)
        this.#schedule()
      })
      if (!sync) return spent
    }
  }
}
