/**
 * The relay connection's lifecycle as an explicit state machine. {@link transition} is
 * pure; the sync client performs the effects of *entering* a state (open a socket, start
 * a backoff timer, ask the auth provider for a token, close the socket).
 *
 *                    go-offline (from any state)
 *        ┌──────────────────────────────────────────────────────────┐
 *        ▼                                                          │
 *   ┌─────────┐ start / go-online ┌────────────┐ socket-open ┌─────────────┐
 *   │ offline │──────────────────▶│ connecting │────────────▶│ handshaking │
 *   └─────────┘                   └────────────┘             └─────────────┘
 *                                   ▲    │ socket-closed/error      │ welcome
 *                  backoff-elapsed  │    ▼                          ▼
 *                  / go-online  ┌─────────────┐ socket-closed ┌─────────┐ synced ┌──────┐
 *                               │ backing-off │◀──────────────│ syncing │───────▶│ live │
 *                               └─────────────┘    / error    └─────────┘        └──────┘
 *                                   ▲    ▲  socket-closed / error (live, handshaking) │
 *                                   │    └─────────────────────────────────────────────┘
 *                             error │
 *                          ┌──────────────┐ token-expired (connecting, handshaking,
 *                          │ auth-expired │◀── syncing, live, backing-off)
 *                          └──────────────┘
 *                                   │ token-refreshed
 *                                   ▼
 *                              connecting
 *
 * Events a state does not list leave it unchanged (e.g. a late `synced` after the socket
 * closed). Writes never depend on the state: they go to the outbox in every state, so
 * offline writes survive token expiry and backoff.
 */

import type { ConnectionState } from '../engine-api'

export type { ConnectionState }

/** What can happen to the connection. */
export type ConnectionEvent =
  | 'start'
  | 'socket-open'
  | 'welcome'
  | 'synced'
  | 'socket-closed'
  | 'error'
  | 'token-expired'
  | 'token-refreshed'
  | 'go-offline'
  | 'go-online'
  | 'backoff-elapsed'

/** Every state, in diagram order (for exhaustive tests and status displays). */
export const CONNECTION_STATES: readonly ConnectionState[] = ['offline', 'connecting', 'handshaking', 'syncing', 'live', 'backing-off', 'auth-expired']

/** Every event. */
export const CONNECTION_EVENTS: readonly ConnectionEvent[] = [
  'start',
  'socket-open',
  'welcome',
  'synced',
  'socket-closed',
  'error',
  'token-expired',
  'token-refreshed',
  'go-offline',
  'go-online',
  'backoff-elapsed',
]

type Table = { readonly [S in ConnectionState]: Partial<Readonly<Record<ConnectionEvent, ConnectionState>>> }

const TABLE: Table = {
  offline: { start: 'connecting', 'go-online': 'connecting' },
  connecting: {
    'socket-open': 'handshaking',
    'socket-closed': 'backing-off',
    error: 'backing-off',
    'token-expired': 'auth-expired',
    'go-offline': 'offline',
  },
  handshaking: {
    welcome: 'syncing',
    'socket-closed': 'backing-off',
    error: 'backing-off',
    'token-expired': 'auth-expired',
    'go-offline': 'offline',
  },
  syncing: {
    synced: 'live',
    'socket-closed': 'backing-off',
    error: 'backing-off',
    'token-expired': 'auth-expired',
    'go-offline': 'offline',
  },
  live: {
    'socket-closed': 'backing-off',
    error: 'backing-off',
    'token-expired': 'auth-expired',
    'go-offline': 'offline',
  },
  'backing-off': {
    'backoff-elapsed': 'connecting',
    // The network came back (or the app asked): no reason to wait out the timer.
    'go-online': 'connecting',
    'token-expired': 'auth-expired',
    'go-offline': 'offline',
  },
  'auth-expired': {
    'token-refreshed': 'connecting',
    // The auth provider failed or returned nothing: wait and try again.
    error: 'backing-off',
    'go-offline': 'offline',
  },
}

/** The state after `event` happens in `state`; unlisted events leave the state unchanged. */
export function transition(state: ConnectionState, event: ConnectionEvent): ConnectionState {
  return TABLE[state][event] ?? state
}

/** Backoff parameters (ms). */
export interface BackoffOptions {
  /** First delay before jitter. */
  readonly baseMs?: number
  /** Largest delay. */
  readonly capMs?: number
}

/** Default first backoff delay (ms). */
export const BACKOFF_BASE_MS = 250
/** Default largest backoff delay (ms). */
export const BACKOFF_CAP_MS = 30_000

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): exponential from
 * `baseMs`, capped at `capMs`, with "equal jitter" (half fixed, half random) so a relay
 * restart does not get every client back in the same millisecond, yet no client retries
 * at once. `random` is injected (returns [0, 1)).
 */
export function backoffDelay(attempt: number, random: () => number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? BACKOFF_BASE_MS
  const cap = options.capMs ?? BACKOFF_CAP_MS
  const exp = Math.min(cap, base * 2 ** Math.min(Math.max(attempt, 0), 30))
  const half = exp / 2
  return Math.round(half + random() * half)
}
