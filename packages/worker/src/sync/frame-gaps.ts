/**
 * Lost-frame bookkeeping of one subscription: the relay numbers each subscription's live
 * `changes` frames (`live`); a number that skips one opens a gap, a late (reordered) frame
 * fills it in, and `synced {frames}` counts up to the last one sent. A gap still open
 * {@link GAP_GRACE_MS} after it opened makes the shape catch up (see `shape-sync.ts`).
 */

/** How long (ms) a skipped live frame may stay missing (a reordered frame arrives late) before the shape catches up. */
export const GAP_GRACE_MS = 500

/** Frame numbers skipped beyond which listing more adds nothing to "something was lost". */
const MAX_MISSING = 1_024

/** The `changes` frame numbers of one subscription: seen, missing, and since when. */
export class FrameGaps {
  /** The highest `changes` frame number seen (relays that number them). */
  #seen = 0
  /** `changes` frame numbers skipped and not yet arrived. */
  readonly #missing = new Set<number>()
  /** When the oldest still-missing frame was first missed. */
  #gapAt: number | undefined

  constructor(readonly now: () => number) {}

  /** True when some frame is missing. */
  get open(): boolean {
    return this.#missing.size > 0
  }

  /** True when a frame has been missing for at least {@link GAP_GRACE_MS} at `now`. */
  overdue(now: number): boolean {
    return this.#gapAt !== undefined && now - this.#gapAt >= GAP_GRACE_MS
  }

  /** Notes `changes` frame `n`: a late one fills its gap, a later one opens gaps for those it skipped. */
  seen(n: number): void {
    if (n <= this.#seen) this.#missing.delete(n)
    else this.missUpTo(n - 1)
    this.#seen = Math.max(this.#seen, n)
    this.#changed()
  }

  /** Frames up to `last` that have not arrived are missing (a later frame or a `synced` counted them). */
  missUpTo(last: number): void {
    for (let n = this.#seen + 1; n <= last && this.#missing.size < MAX_MISSING; n++) this.#missing.add(n)
    this.#seen = Math.max(this.#seen, last)
    this.#changed()
  }

  #changed(): void {
    if (this.#missing.size === 0) this.#gapAt = undefined
    else this.#gapAt ??= this.now()
  }
}
