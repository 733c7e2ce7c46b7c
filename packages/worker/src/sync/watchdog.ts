/**
 * The liveness watchdog of a relay connection: one timer per socket that pings while a
 * session is up, declares a silent connection dead (no frame for `deadMs`, including a
 * connect or hello that never completes), and restarts a session whose owed reconciliation
 * reply made no progress for `replyTimeoutMs`.
 */
import { TimeoutError, serializeError, type SerializedError } from '@outpost/core'
import type { ConnectionState } from '../engine-api'

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

/** What the watchdog looks at and acts on. */
export interface Watched {
  state(): ConnectionState
  /** True while a welcomed session is up (pings go out only then). */
  sessionUp(): boolean
  /** When the socket last delivered a frame (ms); undefined without a socket: nothing to watch. */
  lastFrameAt(): number | undefined
  /** True when a reply the relay owes has made no progress for `replyMs`. */
  stalled(now: number, replyMs: number): boolean
  /** The tick while a session is up (live anti-entropy). */
  tick(now: number): void
  ping(now: number): void
  /** The connection is dead or stalled: reconnect, reporting `error`. */
  fail(error: SerializedError): void
}

/** Starts the watchdog of one socket; clear the returned interval when the socket goes. */
export function startWatchdog(options: WatchdogOptions, watched: Watched): ReturnType<typeof setInterval> {
  const pingMs = options.pingMs ?? DEFAULT_PING_MS
  const deadMs = options.deadMs ?? DEFAULT_DEAD_MS
  const replyMs = options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS
  let pingedAt = 0
  return setInterval(() => {
    const now = options.now()
    const lastFrameAt = watched.lastFrameAt()
    if (lastFrameAt === undefined) return
    if (now - lastFrameAt > deadMs) {
      const state = watched.state()
      const what = state === 'connecting' ? 'the connection did not open' : state === 'handshaking' ? 'the relay did not answer hello' : 'no frame arrived from the relay'
      watched.fail(serializeError(new TimeoutError(`${what} within ${deadMs} ms; reconnecting`, { deadMs, state })))
      return
    }
    if (watched.stalled(now, replyMs)) {
      watched.fail(serializeError(new TimeoutError(`the relay's reconciliation answer for a shape made no progress within ${replyMs} ms; restarting the session`, { replyTimeoutMs: replyMs })))
      return
    }
    if (watched.sessionUp()) watched.tick(now)
    if (watched.sessionUp() && now - pingedAt >= pingMs) {
      pingedAt = now
      watched.ping(now)
    }
  }, Math.max(50, Math.min(1_000, Math.floor(Math.min(pingMs, deadMs) / 4))))
}
