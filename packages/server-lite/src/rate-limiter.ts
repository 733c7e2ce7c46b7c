/**
 * A token bucket per connection: `rate` tokens per second up to `burst`. Time is injected
 * so tests control it.
 */

/** A token bucket. */
export class TokenBucket {
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number
  #tokens: number
  #at: number

  constructor(rate: number, burst: number, now: () => number = Date.now) {
    this.#rate = rate
    this.#burst = burst
    this.#now = now
    this.#tokens = burst
    this.#at = now()
  }

  /** Takes `cost` tokens; returns 0 when granted, else the ms to wait before they would be. */
  take(cost: number): number {
    const t = this.#now()
    this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#at) * this.#rate) / 1000)
    this.#at = t
    if (cost <= this.#tokens) {
      this.#tokens -= cost
      return 0
    }
    return Math.ceil(((Math.min(cost, this.#burst) - this.#tokens) * 1000) / this.#rate)
  }
}
