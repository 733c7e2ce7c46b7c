/**
 * The bus connections' reconnect timer: exponential backoff from `minMs` to `maxMs`, with
 * jitter so the relays that lost their backend at the same moment do not retry in step.
 * One retry is scheduled at a time; a success resets the backoff.
 */
export class ReconnectBackoff {
  readonly #minMs: number
  readonly #maxMs: number
  readonly #random: () => number
  #attempt = 0
  #timer: NodeJS.Timeout | undefined

  constructor(options: { readonly minMs?: number; readonly maxMs?: number; readonly random?: () => number }) {
    this.#minMs = options.minMs ?? 100
    this.#maxMs = options.maxMs ?? 5_000
    this.#random = options.random ?? Math.random
  }

  /** Runs `retry` after the next backoff delay, unless a retry is already scheduled. */
  schedule(retry: () => void): void {
    if (this.#timer !== undefined) return
    const cap = Math.min(this.#maxMs, this.#minMs * 2 ** this.#attempt)
    this.#attempt = Math.min(this.#attempt + 1, 30)
    const delay = cap / 2 + (cap / 2) * this.#random()
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      retry()
    }, delay)
    this.#timer.unref()
  }

  /** The connection is back: the next loss starts from the shortest delay again. */
  succeeded(): void {
    this.#attempt = 0
  }

  /** Cancels a scheduled retry (the bus is closing). */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
