/**
 * The connection's recent transitions, for the inspector: a ring of the newest
 * {@link INSPECTOR_LIMITS.transitions}, fed from outside the state machine. The sync host
 * reports every connection change (`connectionChanged`, called after each transition), and
 * the history records the state it finds when it differs from the last one recorded. A
 * state entered and left within one call (a socket failing synchronously on open) shows as
 * one transition from the state before it to the state after it.
 */
import type { SerializedError } from '@outpost/core'
import type { ConnectionState } from '../engine-api'
import { INSPECTOR_LIMITS, type ConnectionTransition } from '../inspector-api'

/** The ring; see the module comment. */
export class ConnectionHistory {
  readonly #ring: ConnectionTransition[] = []
  readonly #capacity: number
  #last: ConnectionState = 'offline'

  constructor(capacity: number = INSPECTOR_LIMITS.transitions) {
    this.#capacity = capacity
  }

  /** The connection is now in `state` (reported after a transition, or with an error). */
  observe(state: ConnectionState, at: number, error?: SerializedError): void {
    if (state === this.#last) return
    const transition: ConnectionTransition = { from: this.#last, to: state, at, ...(error === undefined ? {} : { error: { code: error.code, message: error.message.slice(0, 300) } }) }
    this.#last = state
    this.#ring.push(transition)
    if (this.#ring.length > this.#capacity) this.#ring.shift()
  }

  /** The kept transitions, oldest first (a copy). */
  list(): ConnectionTransition[] {
    return [...this.#ring]
  }
}
