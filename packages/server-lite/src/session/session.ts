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
 * This file owns the session's lifecycle (states, timers, close and dispose), the order of
 * its frames (decode, then hello, `ops` or dispatch) and what it sends. The parts live
 * beside it: the hello checks in `handshake.ts`, the write path in `writes.ts`, every other
 * message's dispatch in `dispatch.ts`, subscriptions in `subscriptions.ts`, pausing and
 * rate limits in `flow-control.ts` (queued frames stay encoded until their turn, and a lane
 * decodes one at a time), encoding and sending in `outbox.ts`, and the transport interface
 * in `transport.ts`.
 *
 * Close codes and reasons: see `transport.ts`.
 */
import { performance } from 'node:perf_hooks'
import {
  DEFAULT_CODEC_LIMITS,
  InternalError,
  InvalidMessageError,
  TimeoutError,
  TokenExpiredError,
  ForbiddenError,
  TooManyConnectionsError,
  decodeClientMessage,
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
import { RelayBudget } from '../relay-budget'
import { dispatch, type DispatchHost } from './dispatch'
import { FlowControl } from './flow-control'
import { FrameWork, type FrameStart } from './frame-work'
import { TokenExpiry, acceptHello, welcomeFor } from './handshake'
import { Subscriptions } from './subscriptions'
import { truncateReason, type SessionState, type SessionTransport } from './transport'
import { Outbox } from './outbox'
import { OpsWork, type WritesHost } from './writes'

export type { SessionState, SessionTransport } from './transport'

/** One client session; see the module comment. */
export class Session implements Caller {
  /** Random id (HTTP fallback sessions are addressed by it). */
  readonly id: string
  readonly #context: RelayContext
  readonly #transport: SessionTransport
  #state: SessionState = 'awaiting-hello'
  /** This connection's queue on the relay's scheduler; see `flow-control.ts`. */
  readonly #lane: Lane
  /** Pausing the transport and rate limits; see `flow-control.ts`. */
  readonly #flow: FlowControl
  /** The last ack queued: acks go out in the order their batches came. */
  #acks: Promise<void> = Promise.resolve()
  /** Monotonic ms when the peer was last heard from (a frame, or a pong via {@link heard}). */
  #lastHeard = performance.now()
  #badFrames = 0
  #principal: Principal | undefined
  #replicaId = ''
  /** Encoding and sending, in the wire version `hello` negotiated; see `outbox.ts`. */
  readonly #out: Outbox
  #helloTimer: ReturnType<typeof setTimeout> | undefined
  readonly #expiry = new TokenExpiry()
  /** Why the relay closed this session, once it decided to (logged when the transport is gone). */
  #closeCause: CloseCause | undefined
  readonly #access = new Map<string, MapAccess>()
  readonly #subscriptions: Subscriptions

  constructor(id: string, context: RelayContext, transport: SessionTransport) {
    this.id = id
    this.#context = context
    this.#transport = transport
    this.#out = new Outbox(context, transport, () => this.#state === 'closed')
    const limits = context.config.limits
    this.#lane = context.scheduler.lane({
      budgetBytes: limits.maxQueuedBytesPerConnection,
      pause: (on) => this.#flow.pause('budget', on),
      relayPause: (on) => this.#flow.pause('relay', on),
      failed: (error) => this.#unexpected(error),
    })
    const session = this
    this.#flow = new FlowControl({
      transport,
      limits,
      rate: new WriteRate({
        connection: new TokenBucket(limits.opsPerSecond, limits.opsBurst, context.now),
        subject: () => (this.#principal === undefined ? undefined : context.subjectBucket(this.#principal.subject)),
        strikes: limits.rateLimitStrikes,
        now: context.now,
      }),
      get closed() {
        return session.closed
      },
      heard: () => this.heard(),
      send: (message) => this.send(message),
      close: (code, reason) => this.close(code, reason),
    })
    this.#subscriptions = new Subscriptions({
      context,
      owner: this,
      get isOpen() {
        return session.isOpen
      },
      get version() {
        return session.#out.version
      },
      send: (message) => this.send(message),
      sendMeasured: (message) => this.#out.sendMeasured(message),
      encode: (message) => this.#out.encode(message),
      sendEncoded: (frame) => this.#out.sendEncoded(frame),
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
    return this.#flow.paused
  }

  /**
   * True when more than `limits.maxQueuedBytesPerConnection` of received work is waiting, or
   * the relay-wide budget (`limits.maxQueuedBytes`) has stopped reading this session.
   */
  get overBudget(): boolean {
    return this.#lane.queuedBytes > this.#context.config.limits.maxQueuedBytesPerConnection || this.#flow.relayPaused
  }

  /** Sends a transport-level keep-alive (heartbeat). */
  ping(): void {
    if (this.#state !== 'closed') this.#transport.ping?.()
  }

  /** Sends a frame already encoded (one encoding fanned out to many sessions). */
  sendFrame(frame: Uint8Array): void {
    this.#out.frame(frame)
  }

  /** Handles one frame from the client (never throws). */
  receive(frame: Uint8Array): void {
    if (this.#state === 'closed') return
    this.#lastHeard = performance.now()
    this.#context.metrics.bytesIn.inc(frame.length)
    // Charged at its length plus a per-frame overhead: a queued tiny frame costs far more than its bytes.
    this.#lane.push(new FrameWork(frame.length, () => this.#start(frame)), RelayBudget.frameCost(frame.length))
  }

  /** Resolves once every frame received so far has been handled (the HTTP fallback answers after it). */
  idle(): Promise<void> {
    return this.#lane.idle()
  }

  /** Sends a pre-encoded farewell frame and closes (relay drain). */
  shutdown(frame: Uint8Array, code: number, reason: string): void {
    if (this.#state === 'closed') return
    this.#out.frame(frame)
    this.close(code, reason)
  }

  /** Sends a server message. */
  send(message: ServerMessage): void {
    this.#out.send(message)
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
    this.#expiry.clear()
    if (this.#helloTimer !== undefined) clearTimeout(this.#helloTimer)
    this.#flow.dispose()
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
      message = decodeClientMessage(frame, { maxFrameBytes: this.#context.config.limits.maxFrameBytes }, this.#out.version)
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
      if (this.#flow.limited(message.id, message.changes.length)) return
      return new OpsWork(this.#writesHost, message, this.#context.scheduler.pieceUnits)
    }
    return dispatch(this.#dispatchHost, message)
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
    this.#out.version = version
    this.#expiry.arm(context.now, principal.expiresAt, () => this.#fail(new TokenExpiredError('The token expired; get a fresh one from your auth callback and reconnect'), CLOSE.TOKEN_EXPIRED))
    this.send(welcomeFor(context, message, version, { maxFrameBytes: context.config.limits.maxFrameBytes, maxElements: DEFAULT_CODEC_LIMITS.maxElements }))
    context.connections.opened(this, { version })
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

  /** What dispatch sees of this session. */
  get #dispatchHost(): DispatchHost {
    return {
      context: this.#context,
      caller: this,
      id: this.id,
      subscriptions: this.#subscriptions,
      send: (message) => this.send(message),
      limited: (ref, count) => this.#flow.limited(ref, count),
      access: (map) => this.#accessFor(map),
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

