/**
 * A session's flow control. Its lane on the fair scheduler counts the bytes of frames
 * received and not yet handled (for `ops`, not yet committed); past
 * `limits.maxQueuedBytesPerConnection` the session asks its transport to stop reading, and to
 * read again once half of it has drained. A flooding client then waits in its own socket
 * instead of in the relay's memory. The same holds relay-wide: past `limits.maxQueuedBytes`
 * queued over all connections, the relay budget (`relay-budget.ts`) stops reading the
 * sessions that add to it until half has drained. Writes are also rate-limited per connection and per
 * subject (`rate-limiter.ts`): a write refused for rate stops reading from the peer until it
 * may write again, and a peer that keeps writing while told to wait is closed.
 */
import { RateLimitError, serializeError, type ServerMessage } from '@outpost/core'
import type { RelayConfig } from '../config'
import { CLOSE } from '../connection-log'
import type { WriteRate } from '../rate-limiter'
import type { SessionTransport } from './transport'

/** Longest the relay stops reading a rate-limited peer at a time. */
const MAX_RATE_HOLD_MS = 1_000

/** Why a session stops reading: its own queue, the relay-wide queue, or a rate-limit wait. */
export type PauseReason = 'budget' | 'relay' | 'rate'

/** What flow control needs from its session. */
export interface FlowHost {
  readonly transport: SessionTransport
  readonly limits: RelayConfig['limits']
  readonly rate: WriteRate
  readonly closed: boolean
  /** Records that the peer is alive (time spent paused was the relay's choice, not the peer's silence). */
  heard(): void
  send(message: ServerMessage): void
  close(code: number, reason: string): void
}

/** Pauses and rate limits of one session; see the module comment. */
export class FlowControl {
  readonly #host: FlowHost
  /** Why reading is paused: too much queued work, and/or a rate-limit wait in progress. */
  readonly #pausedFor = new Set<PauseReason>()
  #rateTimer: ReturnType<typeof setTimeout> | undefined

  constructor(host: FlowHost) {
    this.#host = host
  }

  /** True while the session has asked its transport to stop reading. */
  get paused(): boolean {
    return this.#pausedFor.size > 0
  }

  /** True while the relay-wide budget has stopped reading this session. */
  get relayPaused(): boolean {
    return this.#pausedFor.has('relay')
  }

  /** Stops the rate-limit wait's timer (the session closed). */
  dispose(): void {
    if (this.#rateTimer !== undefined) clearTimeout(this.#rateTimer)
  }

  /** Sets or clears one reason to stop reading; the transport is paused while any reason holds. */
  pause(reason: PauseReason, on: boolean): void {
    const wasPaused = this.#pausedFor.size > 0
    if (on) this.#pausedFor.add(reason)
    else this.#pausedFor.delete(reason)
    const paused = this.#pausedFor.size > 0
    if (paused === wasPaused || this.#host.closed) return
    if (paused) {
      this.#host.transport.pause?.()
    } else {
      // Time spent paused was the relay's choice, not the peer's silence.
      this.#host.heard()
      this.#host.transport.resume?.()
    }
  }

  /**
   * A write was refused for rate: read nothing more from this peer until it may write
   * again. Its next frames would only be decoded to be refused, at the cost of everyone
   * else's latency; they wait in its own socket instead.
   */
  #holdFor(ms: number): void {
    if (this.#rateTimer !== undefined) clearTimeout(this.#rateTimer)
    this.pause('rate', true)
    this.#rateTimer = setTimeout(() => {
      this.#rateTimer = undefined
      this.pause('rate', false)
      // Capped: a long wait still reads the peer now and then (its close, its pings, at most one refused frame).
    }, Math.min(ms, MAX_RATE_HOLD_MS))
    this.#rateTimer.unref?.()
  }

  /** Takes `count` from the rate limits; when over one, answers RATE_LIMITED for `ref` and returns true. */
  limited(ref: number, count: number): boolean {
    const verdict = this.#host.rate.take(count)
    if (verdict.wait === 0) return false
    const limits = this.#host.limits
    const which =
      verdict.limit === 'subject'
        ? `your account (${limits.subjectOpsPerSecond}/s over all its connections)`
        : `this connection (${limits.opsPerSecond}/s)`
    this.#host.send({
      type: 'error',
      ref,
      error: serializeError(new RateLimitError(`Too many writes for ${which}; retry after ${verdict.wait} ms`, { retryAfterMs: verdict.wait, limit: verdict.limit })),
    })
    if (verdict.abusive) this.#host.close(CLOSE.LIMIT, `rate limit ignored: ${limits.rateLimitStrikes} requests sent while told to wait`)
    else this.#holdFor(verdict.wait)
    return true
  }
}
