/**
 * The connection lifecycle every bus instance follows, one table for all implementations.
 *
 * ```
 *                  connected
 *   connecting ──────────────────▶ connected ◀────────────────────┐
 *    │    ▲                         │     ▲                        │ connected
 *    │    └─ lost (retry)           │     └─ connected (no-op)     │ (signal: reconnected)
 *    │                              │ lost                         │
 *    │                              ▼ (signal: disconnected)       │
 *    │                          reconnecting ──────────────────────┘
 *    │                              │     ▲
 *    │                              │     └─ lost (retry)
 *    ▼ close, from any state        ▼
 *   closed (final: every event leaves it closed)
 * ```
 *
 * Only the transitions into and out of `connected` after the first connection carry a
 * signal: `disconnected` when it is lost, `reconnected` when it is back — the relay's cue
 * to catch up from the store, since what was published meanwhile may be lost.
 */
import type { BusState } from './bus'

/** What happened to an instance's connection. */
export type BusConnectionEvent = 'connected' | 'lost' | 'close'

/** The state after an event, and the signal (if any) the relay is given. */
export interface BusTransition {
  readonly state: BusState
  readonly signal: 'disconnected' | 'reconnected' | undefined
}

/** Every state × event, written out (tested against the same table in core's tests). */
export const BUS_TRANSITIONS: { readonly [S in BusState]: { readonly [E in BusConnectionEvent]: BusTransition } } = {
  connecting: {
    connected: { state: 'connected', signal: undefined },
    lost: { state: 'connecting', signal: undefined },
    close: { state: 'closed', signal: undefined },
  },
  connected: {
    connected: { state: 'connected', signal: undefined },
    lost: { state: 'reconnecting', signal: 'disconnected' },
    close: { state: 'closed', signal: undefined },
  },
  reconnecting: {
    connected: { state: 'connected', signal: 'reconnected' },
    lost: { state: 'reconnecting', signal: undefined },
    close: { state: 'closed', signal: undefined },
  },
  closed: {
    connected: { state: 'closed', signal: undefined },
    lost: { state: 'closed', signal: undefined },
    close: { state: 'closed', signal: undefined },
  },
}

/** The transition from `state` on `event`. */
export function busTransition(state: BusState, event: BusConnectionEvent): BusTransition {
  return BUS_TRANSITIONS[state][event]
}
