/**
 * The liveness watchdog of a relay connection: one timer per socket that pings while a
 * session is up, declares a silent connection dead (no frame for `deadMs`, including a
 * connect or hello that never completes), and restarts a session whose owed reconciliation
 * reply made no progress for `replyTimeoutMs`.
 */
import { TimeoutError, serializeError, type ClientMessage, type SerializedError } from '@outpost/core'
import type { ConnectionState } from '../engine-api'
import type { ConnectionHost } from './connection'

/** Default keep-alive interval: a healthy connection carries a frame at least this often. */
export const DEFAULT_PING_MS = 5_000
/** Default silence (ms) after which a connection is dead: detection within this plus one second, reconnection right after. */
export const DEFAULT_DEAD_MS = 10_000
/** Default time (ms) a reply the relay owes may make no progress before the session restarts. */
export const DEFAULT_REPLY_TIMEOUT_MS = 30_000

/** The watchdog's intervals (ms; defaults above when undefined). */
export interface WatchdogOptions {
  readonly now: () => number
  readonly pingMs: number | undefined
  readonly deadMs?: number | undefined
  readonly replyTimeoutMs?: number | undefined
}

/** The connection the watchdog looks after (the `Connection`). */
export interface WatchedConnection {
  readonly state: ConnectionState
  send(message: ClientMessage): void
  dispatch(event: 'error', error: SerializedError): void
}

/** The session layers above it: whether a session is up, whether an owed reply stalled, the tick (live anti-entropy). */
export type WatchedSession = Pick<ConnectionHost, 'sessionUp' | 'stalled' | 'tick'>

/**
 * Starts the watchdog of one socket; clear the returned interval when the socket goes.
 * `lastFrameAt` says when the socket last delivered a frame (ms), undefined once it is gone.
 */
export function startWatchdog(options: WatchdogOptions, connection: WatchedConnection, session: WatchedSession, lastFrameAt: () => number | undefined): ReturnType<typeof setInterval> {
  const pingMs = options.pingMs ?? DEFAULT_PING_MS
  const deadMs = options.deadMs ?? DEFAULT_DEAD_MS
  const replyMs = options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS
  let pingedAt = 0
  return setInterval(() => {
    const now = options.now()
    const last = lastFrameAt()
    if (last === undefined) return
    if (now - last > deadMs) {
      const state = connection.state
      const what = state === 'connecting' ? 'the connection did not open' : state === 'handshaking' ? 'the relay did not answer hello' : 'no frame arrived from the relay'
      connection.dispatch('error', serializeError(new TimeoutError(`${what} within ${deadMs} ms; reconnecting`, { deadMs, state })))
      return
    }
    if (session.stalled(now, replyMs)) {
      connection.dispatch('error', serializeError(new TimeoutError(`the relay's reconciliation answer for a shape made no progress within ${replyMs} ms; restarting the session`, { replyTimeoutMs: replyMs })))
      return
    }
    if (session.sessionUp) session.tick(now)
    if (session.sessionUp && now - pingedAt >= pingMs) {
      pingedAt = now
      connection.send({ type: 'ping', clientTime: now })
    }
  }, Math.max(50, Math.min(1_000, Math.floor(Math.min(pingMs, deadMs) / 4))))
}
