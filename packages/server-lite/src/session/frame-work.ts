/**
 * One received frame as {@link Work} for the fair scheduler: its first step decodes it and
 * dispatches the message (weighing the frame's bytes); a message handled asynchronously
 * holds its lane until done; an `ops` batch continues as the pieces of its {@link Work}.
 */
import { BYTES_PER_UNIT, type StepCost, type TrackInFlight, type Work } from '../fair-scheduler'

/** What starting a frame leads to: nothing more, an asynchronous handler, or further work (an `ops` batch's pieces). */
export type FrameStart = undefined | Promise<void> | Work

/** A frame waiting on its connection's lane; see the module comment. */
export class FrameWork implements Work {
  readonly #weight: number
  #start: (() => FrameStart) | undefined
  #rest: Work | undefined

  /** `start` decodes and dispatches the frame (called once, when the frame's turn comes). */
  constructor(bytes: number, start: () => FrameStart) {
    this.#weight = Math.max(1, Math.ceil(bytes / BYTES_PER_UNIT))
    this.#start = start
  }

  next(): StepCost {
    return this.#rest?.next() ?? { weight: this.#weight, units: 0 }
  }

  step(track: TrackInFlight): boolean | Promise<boolean> {
    if (this.#rest !== undefined) return this.#rest.step(track)
    const start = this.#start
    this.#start = undefined
    const started = start?.()
    if (started === undefined) return false
    if (started instanceof Promise) return started.then(() => false)
    this.#rest = started
    return true
  }
}
