/**
 * One client session, independent of the transport (WebSocket or the HTTP fallback):
 * decoding, the hello handshake, ops, subscriptions and reconciliation.
 *
 * ```
 *   awaiting-hello ──hello ok──▶ open ──(close | drain | token expiry)──▶ closed
 *        │                         │
 *        └──anything else / bad────┴──▶ error + close
 * ```
 *
 * Frames are handled one at a time, in order, on the session's lane of the relay's
 * fair scheduler (`fair-scheduler.ts`), so `subscribe` is seen before the `reconcile`
 * that follows it, and no connection's frames hold up another's: the scheduler serves the
 * connections in turn and cuts an `ops` batch into pieces (`writes.ts`). A batch's pieces go
 * to the store as they are validated; its ack goes out, in batch order, when the last is
 * durable, so a client that pipelines batches gets group commit, not one fsync each.
 *
 * Coordination primitives (topics, locks, entry processors) are handled by the services
 * in `primitives/`; the session hands them a {@link Caller} view of itself.
 *
 * Flow control: the lane counts the bytes of frames received and not yet handled (for
 * `ops`, not yet committed); past `limits.maxQueuedBytesPerConnection` the session asks its
 * transport to stop reading, and to read again once half of it has drained. A flooding
 * client then waits in its own socket instead of in the relay's memory; queued frames stay
 * encoded until their turn, and a lane decodes one at a time. Writes are also rate-limited
 * per connection and per subject (`rate-limiter.ts`).
 *
 * Close codes ({@link CLOSE}): 4000 protocol version, 4001 unauthenticated, 4002 hello
 * expected, 4003 token expired, 4004 replica bound to another user, 4005 no hello within
 * `limits.helloTimeoutMs`, 4006 heartbeat timeout (silent for two `limits.heartbeatMs`),
 * 4008 limits (rate ignored, connections per subject), 4009 consumer too slow (more than
 * `limits.maxBufferedBytesPerConnection` unsent), 1008 repeated bad frames, 1009 frame too
 * big, 1011 internal, 1012 relay restarting. Every close passes a reason string that says
 * which limit or rule it was. The full table, with how each close is logged and counted, is
 * in connection-log.ts; every session reports its open and its end, with the cause, to the
 * relay's {@link ConnectionLog}.
 */
import { performance } from 'node:perf_hooks'
import {
  DEFAULT_CODEC_LIMITS,
  InternalError,
  InvalidMessageError,
  RateLimitError,
  TimeoutError,
  TokenExpiredError,
  ForbiddenError,
  TooManyConnectionsError,
  decodeClientMessage,
  encodeMessage,
  isOutpostError,
  serializeError,
  type ClientMessage,
  type HelloMessage,
  type OutpostError,
  type ServerMessage,
} from '@outpost/core'
import type { Principal } from '../auth/jwt'
import type { MapAccess } from '../auth/rules'
import { CLOSE, type CloseCause } from '../connection-log'
import type { Caller } from '../primitives/caller'
import type { Lane } from '../fair-scheduler'
import { TokenBucket, WriteRate } from '../rate-limiter'
import type { RelayContext } from '../relay-context'
import { FrameWork, type FrameStart } from './frame-work'
import { acceptHello, welcomeFor } from './handshake'
import { Subscriptions } from './subscriptions'
import { OpsWork, type WritesHost } from './writes'

/** How a session reaches its client. */
export interface SessionTransport {
  /** `'ws'` or `'http'` (logs and metrics). */
  readonly kind: 'ws' | 'http'
  /** The peer's address, for logs. */
  readonly remote?: string | undefined
  /** Sends one frame (a server message). */
  send(frame: Uint8Array): void
  /** Closes the connection with a code and a short reason. */
  close(code: number, reason: string): void
  /** Bytes handed to the transport and not yet written to the network (the send buffer). */
  bufferedBytes(): number
  /** Sends a transport-level keep-alive (WebSocket ping), if the transport has one. */
  ping?(): void
  /** Stops reading from the peer (flow control), if the transport can. */
  pause?(): void
  /** Reads from the peer again. */
  resume?(): void
}

/** Session states; see the module diagram. */
export type SessionState = 'awaiting-hello' | 'open' | 'closed'

/** Longest the relay stops reading a rate-limited peer at a time. */
const MAX_RATE_HOLD_MS = 1_000
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** One client session; see the module comment. */
export class Session implements Caller {
  /** Random id (HTTP fallback sessions are addressed by it). */
  readonly id: string
  readonly #context: RelayContext
  readonly #transport: SessionTransport
  #state: SessionState = 'awaiting-hello'
  /** This connection's queue on the relay's scheduler; see flow control in the module comment. */
  readonly #lane: Lane
  /** The last ack queued: acks go out in the order their batches came. */
  #acks: Promise<void> = Promise.resolve()
  /** Why reading is paused: too much queued work, and/or a rate-limit wait in progress. */
  readonly #pausedFor = new Set<'budget' | 'rate'>()
  #rateTimer: ReturnType<typeof setTimeout> | undefined
  /** Monotonic ms when the peer was last heard from (a frame, or a pong via {@link heard}). */
  #lastHeard = performance.now()
  #badFrames = 0
  #principal: Principal | undefined
  #replicaId = ''
  /** The wire version `hello` negotiated: frames are read and written in it (1 until then; a v2 reader reads v1 too). */
  #version = 1
  readonly #rate: WriteRate
  #helloTimer: ReturnType<typeof setTimeout> | undefined
  #expiry: ReturnType<typeof setTimeout> | undefined
  /** Why the relay closed this session, once it decided to (logged when the transport is gone). */
  #closeCause: CloseCause | undefined
  readonly #access = new Map<string, MapAccess>()
  readonly #subscriptions: Subscriptions

  constructor(id: string, context: RelayContext, transport: SessionTransport) {
    this.id = id
    this.#context = context
    this.#transport = transport
    const limits = context.config.limits
    this.#lane = context.scheduler.lane({
      budgetBytes: limits.maxQueuedBytesPerConnection,
      pause: (on) => this.#pause('budget', on),
      failed: (error) => this.#unexpected(error),
    })
    this.#rate = new WriteRate({
      connection: new TokenBucket(limits.opsPerSecond, limits.opsBurst, context.now),
      subject: () => (this.#principal === undefined ? undefined : context.subjectBucket(this.#principal.subject)),
      strikes: limits.rateLimitStrikes,
      now: context.now,
    })
    const session = this
    this.#subscriptions = new Subscriptions({
      context,
      owner: this,
      get isOpen() {
        return session.isOpen
      },
      send: (message) => this.send(message),
      sendMeasured: (message) => this.#sendMeasured(message),
      bufferedBytes: () => this.#transport.bufferedBytes(),
      access: (map) => this.#accessFor(map),
    })
    context.metrics.connections.inc()
    this.#helloTimer = setTimeout(() => {
      if (this.#state !== 'awaiting-hello') return
      this.#fail(new TimeoutError(`No valid hello within ${limits.helloTimeoutMs} ms of connecting; send hello first`, { timeoutMs: limits.helloTimeoutMs }), CLOSE.HELLO_TIMEOUT, `no hello within ${limits.helloTimeoutMs} ms`)
    }, limits.helloTimeoutMs)
    this.#helloTimer.unref?.()
    context.connections.connected(this)
  }

  /** `'ws'` or `'http'`. */
  get transport(): 'ws' | 'http' {
    return this.#transport.kind
  }

  /** The peer's address, when the transport knows it. */
  get remote(): string | undefined {
    return this.#transport.remote
  }

  /** The current state. */
  get state(): SessionState {
    return this.#state
  }

  /** The authenticated subject, once the handshake is done. */
  get subject(): string | undefined {
    return this.#principal?.subject
  }

  /** The replica id bound at hello (`''` before). */
  get replicaId(): string {
    return this.#replicaId
  }

  /** The authenticated principal (only read once the session is open). */
  get principal(): Principal {
    return this.#principal as Principal
  }

  /** True while the session is open. */
  get isOpen(): boolean {
    return this.#state === 'open'
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#state === 'closed'
  }

  /** Monotonic ms (`performance.now()`) when the peer was last heard from. */
  get lastHeard(): number {
    return this.#lastHeard
  }

  /** Records that the peer is alive (a pong, an attached event stream). */
  heard(): void {
    this.#lastHeard = performance.now()
  }

  /** True while the session has asked its transport to stop reading (flow control). */
  get paused(): boolean {
    return this.#pausedFor.size > 0
  }

  /** True when more than `limits.maxQueuedBytesPerConnection` of received work is waiting. */
  get overBudget(): boolean {
    return this.#lane.queuedBytes > this.#context.config.limits.maxQueuedBytesPerConnection
  }

  /** Sends a transport-level keep-alive (heartbeat). */
  ping(): void {
    if (this.#state !== 'closed') this.#transport.ping?.()
  }

  /** Sends a frame already encoded (one encoding fanned out to many sessions). */
  sendFrame(frame: Uint8Array): void {
    if (this.#state === 'closed') return
    this.#context.metrics.bytesOut.inc(frame.length)
    this.#transport.send(frame)
  }

  /** Handles one frame from the client (never throws). */
  receive(frame: Uint8Array): void {
    if (this.#state === 'closed') return
    this.#lastHeard = performance.now()
    this.#context.metrics.bytesIn.inc(frame.length)
    this.#lane.push(new FrameWork(frame.length, () => this.#start(frame)), frame.length)
  }

  /** Sets or clears one reason to stop reading; the transport is paused while any reason holds. */
  #pause(reason: 'budget' | 'rate', on: boolean): void {
    const wasPaused = this.#pausedFor.size > 0
    if (on) this.#pausedFor.add(reason)
    else this.#pausedFor.delete(reason)
    const paused = this.#pausedFor.size > 0
    if (paused === wasPaused || this.#state === 'closed') return
    if (paused) {
      this.#transport.pause?.()
    } else {
      // Time spent paused was the relay's choice, not the peer's silence.
      this.#lastHeard = performance.now()
      this.#transport.resume?.()
    }
  }

  /**
   * A write was refused for rate: read nothing more from this peer until it may write
   * again. Its next frames would only be decoded to be refused, at the cost of everyone
   * else's latency; they wait in its own socket instead.
   */
  #holdFor(ms: number): void {
    if (this.#rateTimer !== undefined) clearTimeout(this.#rateTimer)
    this.#pause('rate', true)
    this.#rateTimer = setTimeout(() => {
      this.#rateTimer = undefined
      this.#pause('rate', false)
      // Capped: a long wait still reads the peer now and then (its close, its pings, at most one refused frame).
    }, Math.min(ms, MAX_RATE_HOLD_MS))
    this.#rateTimer.unref?.()
  }

  /** Resolves once every frame received so far has been handled (the HTTP fallback answers after it). */
  idle(): Promise<void> {
    return this.#lane.idle()
  }

  /** Sends a pre-encoded farewell frame and closes (relay drain). */
  shutdown(frame: Uint8Array, code: number, reason: string): void {
    if (this.#state === 'closed') return
    this.#context.metrics.bytesOut.inc(frame.length)
    this.#transport.send(frame)
    this.close(code, reason)
  }

  /** Sends a server message. */
  send(message: ServerMessage): void {
    if (this.#state === 'closed') return
    let frame: Uint8Array
    try {
      frame = encodeMessage(message, this.#version)
    } catch (error) {
      this.#context.logger.error({ err: error, type: message.type }, 'cannot encode a server message')
      return
    }
    this.#context.metrics.bytesOut.inc(frame.length)
    if (message.type === 'error') this.#context.metrics.errors.inc({ code: message.error.code })
    this.#transport.send(frame)
  }

  /** Sends a message and returns its frame's length (0 when nothing was sent). */
  #sendMeasured(message: ServerMessage): number {
    if (this.#state === 'closed') return 0
    let frame: Uint8Array
    try {
      frame = encodeMessage(message, this.#version)
    } catch (error) {
      this.#context.logger.error({ err: error, type: message.type }, 'cannot encode a server message')
      return 0
    }
    this.#context.metrics.bytesOut.inc(frame.length)
    this.#transport.send(frame)
    return frame.length
  }

  /** Sends a fatal error, then closes (with `reason`, or the error's message cut to fit). */
  #fail(error: OutpostError, code: number, reason = error.message.slice(0, 120)): void {
    this.send({ type: 'error', error: serializeError(error) })
    this.close(code, reason)
  }

  /** Closes the session (idempotent) and releases everything it holds. */
  close(code: number, reason: string): void {
    if (this.#state === 'closed') return
    this.#closeCause ??= { code, reason }
    this.#transport.close(code, truncateReason(reason))
    this.dispose()
  }

  /**
   * Releases the session after its transport closed (idempotent). `cause` is what the
   * transport saw (the client's close code and reason); a close the relay decided on
   * first is reported with the relay's cause instead.
   */
  dispose(cause: CloseCause = { code: CLOSE.ABNORMAL, reason: '' }): void {
    if (this.#state === 'closed') return
    const wasOpen = this.#state === 'open'
    this.#state = 'closed'
    if (this.#expiry !== undefined) clearTimeout(this.#expiry)
    if (this.#helloTimer !== undefined) clearTimeout(this.#helloTimer)
    if (this.#rateTimer !== undefined) clearTimeout(this.#rateTimer)
    this.#lane.close()
    this.#subscriptions.closeAll()
    if (wasOpen) {
      this.#context.topics.sessionClosed(this)
      this.#context.locks.sessionClosed(this)
    }
    this.#context.metrics.connections.dec()
    this.#context.sessionClosed(this, wasOpen ? this.#principal?.subject : undefined)
    this.#context.connections.closed(this, this.#closeCause ?? cause, wasOpen)
  }

  #unexpected(error: unknown): void {
    if (isOutpostError(error) && this.#state === 'closed') return
    this.#context.logger.error({ err: error, session: this.id }, 'unexpected error while handling a frame')
    this.send({ type: 'error', error: serializeError(new InternalError('The relay failed to handle this message; it has been logged. Retry, and report it if it persists')) })
  }

  /** Decodes one frame and starts handling it (its turn on the lane has come); see {@link FrameStart}. */
  #start(frame: Uint8Array): FrameStart {
    if (this.#state === 'closed') return undefined
    let message: ClientMessage
    try {
      message = decodeClientMessage(frame, { maxFrameBytes: this.#context.config.limits.maxFrameBytes }, this.#version)
    } catch (error) {
      const serialized = serializeError(error)
      if (this.#state === 'awaiting-hello') {
        this.send({ type: 'error', error: serialized })
        this.close(CLOSE.HELLO_EXPECTED, 'expected a valid hello')
        return
      }
      this.send({ type: 'error', error: serialized })
      if (++this.#badFrames >= this.#context.config.limits.maxBadFrames) this.close(CLOSE.POLICY, 'too many invalid frames')
      return
    }
    if (this.#state === 'awaiting-hello') {
      if (message.type !== 'hello') {
        this.#fail(new InvalidMessageError(`The first message must be hello, got ${message.type}`), CLOSE.HELLO_EXPECTED)
        return
      }
      return this.#hello(message)
    }
    if (message.type === 'ops') {
      this.#context.metrics.opsIn.inc(message.changes.length)
      if (this.#limited(message.id, message.changes.length)) return
      return new OpsWork(this.#writesHost, message, this.#context.scheduler.pieceUnits)
    }
    return this.#handle(message)
  }

  /** Handles a message other than `ops` and `hello` (in order: the lane waits for it). */
  async #handle(message: Exclude<ClientMessage, { type: 'ops' }>): Promise<void> {
    switch (message.type) {
      case 'hello':
        this.send({ type: 'error', error: serializeError(new InvalidMessageError('hello was already received on this session')) })
        return
      case 'ping':
        this.send({ type: 'pong', clientTime: message.clientTime, serverTime: this.#context.now() })
        return
      case 'credit':
        this.#subscriptions.credit(message.bytes)
        return
      case 'subscribe':
        await this.#subscriptions.subscribe(message)
        return
      case 'unsubscribe':
        this.#subscriptions.unsubscribe(message.sub)
        return
      case 'reconcile':
        await this.#subscriptions.reconcile(message)
        return
      case 'entries':
        await this.#subscriptions.entries(message)
        return
      case 'topic-sub':
        this.#context.topics.subscribe(this, message.topic)
        return
      case 'topic-unsub':
        this.#context.topics.unsubscribe(this, message.topic)
        return
      case 'topic-pub':
        if (this.#limited(message.id, 1)) return
        this.#context.topics.publish(this, message)
        return
      case 'lock-acquire':
        // Not awaited: a waiting acquire must not hold up this session's other frames.
        void this.#context.locks.acquire(this, message).catch((error: unknown) => this.#failRequest(message.id, error))
        return
      case 'lock-extend':
        void this.#context.locks.extend(this, message).catch((error: unknown) => this.#failRequest(message.id, error))
        return
      case 'lock-release':
        await this.#context.locks.release(this, message).catch((error: unknown) => this.#failRequest(message.id, error))
        return
      case 'lock-check':
        await this.#context.locks.check(this, message).catch((error: unknown) => this.#failRequest(message.id, error))
        return
      case 'invoke':
        if (this.#limited(message.id, 1)) return
        await this.#context.functions.invoke(this, this.#accessFor(message.map), message).catch((error: unknown) => this.#failRequest(message.id, error))
        return
    }
  }

  /** Takes `count` from the rate limits; when over one, answers RATE_LIMITED for `ref` and returns true. */
  #limited(ref: number, count: number): boolean {
    const verdict = this.#rate.take(count)
    if (verdict.wait === 0) return false
    const limits = this.#context.config.limits
    const which =
      verdict.limit === 'subject'
        ? `your account (${limits.subjectOpsPerSecond}/s over all its connections)`
        : `this connection (${limits.opsPerSecond}/s)`
    this.send({
      type: 'error',
      ref,
      error: serializeError(new RateLimitError(`Too many writes for ${which}; retry after ${verdict.wait} ms`, { retryAfterMs: verdict.wait, limit: verdict.limit })),
    })
    if (verdict.abusive) this.close(CLOSE.LIMIT, `rate limit ignored: ${limits.rateLimitStrikes} requests sent while told to wait`)
    else this.#holdFor(verdict.wait)
    return true
  }

  /** Answers request `ref` with an error (a failure outside the frame chain, e.g. the store while loading a lock). */
  #failRequest(ref: number, error: unknown): void {
    if (!isOutpostError(error)) this.#context.logger.error({ err: error, session: this.id }, 'unexpected error while handling a request')
    this.send({ type: 'error', ref, error: serializeError(isOutpostError(error) ? error : new InternalError('The relay failed to handle this request; it has been logged')) })
  }

  // ───────────────────────────── handshake ─────────────────────────────

  async #hello(message: HelloMessage): Promise<void> {
    const context = this.#context
    // The hello arrived in time; verifying its token (a JWKS fetch, say) does not count against the deadline.
    if (this.#helloTimer !== undefined) clearTimeout(this.#helloTimer)
    const verdict = await acceptHello(context, message)
    if (this.#state === 'closed') return
    if (!verdict.ok) {
      this.#fail(verdict.error, verdict.code)
      return
    }
    const { version, principal } = verdict
    if (!context.admit(this, principal.subject)) {
      this.#fail(new TooManyConnectionsError(`User ${principal.subject.slice(0, 64)} already has ${context.config.limits.maxConnectionsPerSubject} connections; close some tabs or devices`), CLOSE.LIMIT)
      return
    }
    // From here the subject's connection slot is held: dispose() gives it back.
    this.#principal = principal
    this.#state = 'open'
    try {
      await context.sync.bindReplica(message.replicaId, principal.subject)
    } catch (error) {
      if (error instanceof ForbiddenError) {
        this.#fail(error, CLOSE.FORBIDDEN)
        return
      }
      // Without a bound replica the session cannot work: say so and let the client retry later.
      context.logger.error({ err: error, session: this.id }, 'cannot bind replica')
      this.#fail(new InternalError('The relay could not register this replica; reconnect later'), CLOSE.INTERNAL)
      return
    }
    if (this.#state !== 'open') return
    this.#replicaId = message.replicaId
    this.#subscriptions.setWindow(message.window)
    this.#version = version
    this.#armExpiry()
    this.send(welcomeFor(context, message, version, { maxFrameBytes: context.config.limits.maxFrameBytes, maxElements: DEFAULT_CODEC_LIMITS.maxElements }))
    context.connections.opened(this, { version })
  }

  #armExpiry(): void {
    const expiresAt = this.#principal?.expiresAt
    if (expiresAt === null || expiresAt === undefined) return
    const delay = expiresAt - this.#context.now()
    this.#expiry = setTimeout(
      () => {
        if (this.#context.now() < expiresAt) {
          this.#armExpiry()
          return
        }
        this.#fail(new TokenExpiredError('The token expired; get a fresh one from your auth callback and reconnect'), CLOSE.TOKEN_EXPIRED)
      },
      Math.min(Math.max(delay, 0), MAX_TIMER_MS),
    )
    this.#expiry.unref?.()
  }

  /** What the write path sees of this session. */
  get #writesHost(): WritesHost {
    const session = this
    return {
      context: this.#context,
      owner: this,
      replicaId: this.#replicaId,
      get isOpen() {
        return session.isOpen
      },
      send: (message) => this.send(message),
      access: (map) => this.#accessFor(map),
      inOrder: (ready, send) => {
        this.#acks = this.#acks.then(() => ready).then(send, send)
      },
    }
  }

  #accessFor(map: string): MapAccess {
    let access = this.#access.get(map)
    if (access === undefined) {
      // A cache, bounded: a client naming endless maps costs recomputation, not memory.
      if (this.#access.size >= 1_000) this.#access.clear()
      access = this.#context.rules.access(map, this.#principal as Principal)
      this.#access.set(map, access)
    }
    return access
  }
}

function truncateReason(reason: string): string {
  // A WebSocket close reason is at most 123 bytes of UTF-8.
  let out = reason
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1)
  return out
}
