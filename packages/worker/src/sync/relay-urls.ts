/**
 * The relay URLs in failover order and which one the current (or next) connection goes to.
 * A round is one failed or lost connection per URL in a row: the next URL is tried at once
 * until every URL has failed in the round, and only then does the connection back off. A
 * session that goes live starts a new round, so losing a live relay moves to the next one
 * without delay.
 */
import { relayUrlList, type RelayUrlInput } from '@outpost/core'

/** The relay URLs of one sync client and its place in the failover round. */
export class RelayUrls {
  readonly #urls: readonly string[]
  #index = 0
  /** Connections failed or lost in a row in the current round; a full round means backoff. */
  #roundFailures = 0

  constructor(input: RelayUrlInput | undefined) {
    this.#urls = relayUrlList(input)
  }

  /** True when a relay URL is configured. */
  get any(): boolean {
    return this.#urls.length > 0
  }

  /** The URL the current (or next) connection uses; undefined without a relay. */
  get current(): string | undefined {
    return this.#urls[this.#index]
  }

  /** A session went live (or the network came back): a new round begins. */
  newRound(): void {
    this.#roundFailures = 0
  }

  /**
   * The connection to the current URL failed or was lost: moves to the next URL of the
   * list. True when that URL has not failed yet in this round (connect to it now); false
   * when the round is complete (or there is one URL), so the caller backs off first.
   */
  failover(): boolean {
    if (this.#urls.length <= 1) return false
    this.#index = (this.#index + 1) % this.#urls.length
    this.#roundFailures++
    if (this.#roundFailures < this.#urls.length) return true
    this.#roundFailures = 0
    return false
  }
}
