/**
 * The fencing pattern, as a small helper: a resource protected by a lock remembers the
 * highest fencing token it has accepted and refuses any write carrying a lower one. A
 * holder that paused past its lease (GC pause, suspended laptop, partition) still believes
 * it holds the lock, but by then the lock has a newer token, and its late write bounces.
 *
 * Tokens from Outpost's locks strictly increase per lock, across relay restarts, so this
 * check alone keeps the resource consistent. For resources that are not Outpost clients,
 * the relay also answers `POST /locks/<name>/check` with `{ valid, current }`.
 */
import { LockError } from '@outpost/core'

/** A value guarded by fencing tokens; see the module comment. */
export class FencedResource<T> {
  #highest = 0
  #value: T
  #accepted = 0
  #rejected = 0

  constructor(initial: T) {
    this.#value = initial
  }

  /** The highest token accepted so far (0 before the first write). */
  get highestToken(): number {
    return this.#highest
  }

  /** The current value. */
  get value(): T {
    return this.#value
  }

  /** Writes accepted so far. */
  get accepted(): number {
    return this.#accepted
  }

  /** Writes refused so far (stale tokens). */
  get rejected(): number {
    return this.#rejected
  }

  /** True when a write with `token` would be accepted now (not lower than the highest seen). */
  admits(token: number): boolean {
    return Number.isSafeInteger(token) && token > 0 && token >= this.#highest
  }

  /**
   * Applies `update` when `token` is not lower than the highest token seen, and remembers
   * it; otherwise throws {@link LockError} and changes nothing. The same token may write
   * many times (one lease, several writes).
   */
  write(token: number, update: (current: T) => T): T {
    if (!this.admits(token)) {
      this.#rejected++
      throw new LockError(`Fencing token ${token} is stale: this resource already accepted token ${this.#highest}. Your lease ended; acquire the lock again`, {
        token,
        highest: this.#highest,
      })
    }
    this.#value = update(this.#value)
    this.#highest = token
    this.#accepted++
    return this.#value
  }
}
