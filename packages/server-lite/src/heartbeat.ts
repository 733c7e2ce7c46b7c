/**
 * Heartbeats with a deadline. Every `intervalMs` the relay pings each session's peer
 * (a WebSocket ping, which browsers and `ws` answer by themselves; a comment line on an
 * HTTP fallback event stream), and a session that has been silent — no frame, no pong —
 * for two intervals is terminated with {@link CLOSE.HEARTBEAT_TIMEOUT}. The sweep runs
 * every half interval, so a dead peer is dropped between 2 and 2.5 intervals after it was
 * last heard from. A session the relay itself stopped reading (flow control, the relay-wide
 * budget) is not silent: it is not expired while paused. Nor is one the relay could not
 * read because its own event loop was stuck: a sweep that comes more than two intervals
 * late gives every peer a full deadline from then (before, a 40 s stall — a heap snapshot —
 * closed every connection, 4006, seen by clients as 1006).
 *
 * Silence is measured on a monotonic clock, not the relay's injectable wall clock, so a
 * test (or an NTP step) moving the wall clock never expires live sessions.
 */
import { performance } from 'node:perf_hooks'
import { CLOSE } from './connection-log'

/** What the heartbeat needs of a session. */
export interface HeartbeatTarget {
  /** Monotonic ms (`performance.now()`) when the peer was last heard from. */
  readonly lastHeard: number
  /** True while the relay is not reading this peer (its frames wait in the socket). */
  readonly paused: boolean
  /** True once closed. */
  readonly closed: boolean
  /** Sends a transport-level ping. */
  ping(): void
  /** Closes with a code and reason. */
  close(code: number, reason: string): void
}

/** The monotonic clock liveness is measured on. */
export function monotonicNow(): number {
  return performance.now()
}

/**
 * A sweep this much later than due means the relay's event loop was stuck (a long GC, a
 * heap snapshot, a machine out of CPU): timers run before sockets are read, so every peer
 * would look silent. Peers get a full deadline from the end of such a stall.
 */
const STALL_FACTOR = 2

/** Pings and expires the sessions `targets()` returns; see the module comment. */
export class Heartbeat {
  readonly #intervalMs: number
  readonly #targets: () => Iterable<HeartbeatTarget>
  readonly #onTick: () => void
  #timer: ReturnType<typeof setInterval> | undefined
  #tick = 0
  #lastSweep = monotonicNow()
  /** When the relay last came back from a stall: silence is counted from there at the earliest. */
  #resumedAt = Number.NEGATIVE_INFINITY

  constructor(options: { intervalMs: number; targets: () => Iterable<HeartbeatTarget>; onTick?: () => void }) {
    this.#intervalMs = options.intervalMs
    this.#targets = options.targets
    this.#onTick = options.onTick ?? (() => undefined)
  }

  /** Starts the sweep (unref'd: it never keeps the process alive). */
  start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => this.sweep(), Math.max(5, Math.floor(this.#intervalMs / 2)))
    this.#timer.unref()
  }

  /** Stops the sweep. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One sweep: expire the silent, ping the rest every other sweep (once per interval). */
  sweep(): void {
    const now = monotonicNow()
    const ping = this.#tick++ % 2 === 0
    const deadline = 2 * this.#intervalMs
    // The relay's own stall is not the peers' silence (its pongs and frames wait unread in the sockets).
    if (now - this.#lastSweep > STALL_FACTOR * this.#intervalMs) this.#resumedAt = now
    this.#lastSweep = now
    for (const target of [...this.#targets()]) {
      if (target.closed || target.paused) continue
      const silent = now - Math.max(target.lastHeard, this.#resumedAt)
      if (silent >= deadline) {
        target.close(CLOSE.HEARTBEAT_TIMEOUT, `heartbeat timeout: nothing received for ${Math.round(silent)} ms (limit ${deadline} ms)`)
      } else if (ping) {
        target.ping()
      }
    }
    this.#onTick()
  }
}
