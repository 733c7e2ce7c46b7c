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
 * Frames are handled one at a time, in order (a promise chain), so `subscribe` is seen
 * before the `reconcile` that follows it. An `ops` batch leaves the chain once it is
 * validated, merged in memory and handed to the store: its ack goes out when the commit
 * is durable, so a client that pipelines batches gets group commit, not one fsync each.
 *
 * Coordination primitives (topics, locks, entry processors) are handled by the services
 * in `primitives/`; the session hands them a {@link Caller} view of itself.
 *
 * Flow control: the bytes of frames received and not yet handled (for `ops`, not yet
 * acknowledged) are counted; past `limits.maxQueuedBytesPerConnection` the session asks
 * its transport to stop reading, and to read again once half of it has drained. A flooding
 * client then waits in its own socket instead of in the relay's memory. Writes are also
 * rate-limited per connection and per subject (`rate-limiter.ts`).
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
  AuthError,
  ForbiddenError,
  InternalError,
  InvalidMessageError,
  InvalidValueError,
  QueryError,
  RateLimitError,
  TimeoutError,
  TokenExpiredError,
  TooManyConnectionsError,
  DEFAULT_CODEC_LIMITS,
  ValueTooLargeError,
  andPredicates,
  assertChangeFits,
  itemBudget,
  keySize,
  measure,
  packBySize,
  decodeClientMessage,
  diffEntries,
  encodeMessage,
  isOutpostError,
  lwwLatest,
  mergeState,
  negotiateVersion,
  parseChange,
  serializeError,
  shapeKey,
  stateEquals,
  validateShape,
  MESSAGE_LIMITS,
  type Change,
  type ClientMessage,
  type CollectionKind,
  type CrdtState,
  type EntriesMessage,
  type HelloMessage,
  type LwwRecordState,
  type OpsMessage,
  type OutpostError,
  type ReconcileMessage,
  type SerializedError,
  type ServerMessage,
  type StoreEntry,
  type SubscribeMessage,
  type Value,
  type WireLimits,
  type MerkleNodeInfo,
  type FrameSize,
} from '@outpost/core'
import type { Principal } from './auth/jwt'
import type { MapAccess } from './auth/rules'
import type { RelayContext } from './relay-context'
import { CLOSE, type CloseCause } from './connection-log'
import { TokenBucket, WriteRate } from './rate-limiter'
import { kindMetaKey, storeCollection } from './sync/collection'
import type { ShapeView } from './sync/shape-view'
import type { AppliedChange, Subscriber } from './sync/sync-service'
import type { Caller } from './primitives/caller'
import { checkChange } from './sync/validate-change'

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

/** Most records in one `changes` frame; frames are cut by exact bytes first (`packBySize`). */
const SLICE_RECORDS = 2_000
/** A paced stream (an initial slice) waits while the socket's send buffer holds more than this. */
const SEND_LOW_WATER = 1024 * 1024
/** How often (ms) a paced stream re-checks a full send buffer. */
const DRAIN_POLL_MS = 5
/** Longest the relay stops reading a rate-limited peer at a time. */
const MAX_RATE_HOLD_MS = 1_000
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** An `ops` batch handed to the store: `settled` once its ack has been sent. Not a promise itself, so returning it from an async handler does not wait for it. */
interface PendingAck {
  readonly settled: Promise<void>
}

interface Subscription extends Subscriber {
  readonly access: MapAccess
  closed: boolean
}

/** One client session; see the module comment. */
export class Session implements Caller {
  /** Random id (HTTP fallback sessions are addressed by it). */
  readonly id: string
  readonly #context: RelayContext
  readonly #transport: SessionTransport
  #state: SessionState = 'awaiting-hello'
  #queue: Promise<void> = Promise.resolve()
  /** Bytes of frames received and not yet handled (ops: not yet acknowledged); see flow control in the module comment. */
  #queuedBytes = 0
  /** Why reading is paused: too much queued work, and/or a rate-limit wait in progress. */
  readonly #pausedFor = new Set<'budget' | 'rate'>()
  #rateTimer: ReturnType<typeof setTimeout> | undefined
  /** Monotonic ms when the peer was last heard from (a frame, or a pong via {@link heard}). */
  #lastHeard = performance.now()
  #badFrames = 0
  #principal: Principal | undefined
  #replicaId = ''
  readonly #rate: WriteRate
  #helloTimer: ReturnType<typeof setTimeout> | undefined
  #expiry: ReturnType<typeof setTimeout> | undefined
  /** Why the relay closed this session, once it decided to (logged when the transport is gone). */
  #closeCause: CloseCause | undefined
  readonly #subs = new Map<number, Subscription>()
  readonly #access = new Map<string, MapAccess>()
  /** Flow control (hello `window`): paced bytes the client may hold unprocessed; undefined = socket pacing only. */
  #window: number | undefined
  /** The wire version `hello` negotiated: frames are read and written in it (1 until then; a v2 reader reads v1 too). */
  #version = 1
  /** Paced bytes sent and not yet paid back by `credit`. */
  #owed = 0
  /** Paced streams waiting for credit or for the session to end. */
  #creditWaiters: (() => void)[] = []
  /** `entries` lists of one path arriving in several frames (`more`), by `sub \0 path`. */
  readonly #partialEntries = new Map<string, [string, string][]>()

  constructor(id: string, context: RelayContext, transport: SessionTransport) {
    this.id = id
    this.#context = context
    this.#transport = transport
    const limits = context.config.limits
    this.#rate = new WriteRate({
      connection: new TokenBucket(limits.opsPerSecond, limits.opsBurst, context.now),
      subject: () => (this.#principal === undefined ? undefined : context.subjectBucket(this.#principal.subject)),
      strikes: limits.rateLimitStrikes,
      now: context.now,
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
    return this.#queuedBytes > this.#context.config.limits.maxQueuedBytesPerConnection
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
    const bytes = frame.length
    this.#charge(bytes)
    this.#queue = this.#queue
      .then(() => this.#handleFrame(frame))
      .then(
        // An ops batch keeps its bytes charged until its ack is sent (the commit may still be running).
        (pending) => {
          if (pending === undefined) {
            this.#release(bytes)
            return
          }
          pending.settled.then(
            () => this.#release(bytes),
            (error: unknown) => {
              this.#release(bytes)
              this.#unexpected(error)
            },
          )
        },
        (error: unknown) => {
          this.#release(bytes)
          this.#unexpected(error)
        },
      )
  }

  #charge(bytes: number): void {
    this.#queuedBytes += bytes
    if (this.overBudget) this.#pause('budget', true)
  }

  #release(bytes: number): void {
    this.#queuedBytes -= bytes
    // Hysteresis: read again at half the budget, so a flooder is not paused and resumed on every frame.
    if (this.#queuedBytes <= this.#context.config.limits.maxQueuedBytesPerConnection / 2) this.#pause('budget', false)
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
    return this.#queue
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
    for (const wake of this.#creditWaiters.splice(0)) wake()
    for (const sub of this.#subs.values()) this.#drop(sub)
    this.#subs.clear()
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

  /** Handles one frame; for an `ops` batch, returns the ack still to come (so its bytes stay charged until then). */
  async #handleFrame(frame: Uint8Array): Promise<PendingAck | undefined> {
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
      await this.#hello(message)
      return
    }
    switch (message.type) {
      case 'hello':
        this.send({ type: 'error', error: serializeError(new InvalidMessageError('hello was already received on this session')) })
        return
      case 'ping':
        this.send({ type: 'pong', clientTime: message.clientTime, serverTime: this.#context.now() })
        return
      case 'credit':
        this.#owed = Math.max(0, this.#owed - message.bytes)
        for (const wake of this.#creditWaiters.splice(0)) wake()
        return
      case 'ops':
        return this.#ops(message)
      case 'subscribe':
        await this.#subscribe(message)
        return
      case 'unsubscribe': {
        const sub = this.#subs.get(message.sub)
        if (sub !== undefined) this.#drop(sub)
        return
      }
      case 'reconcile':
        this.#reconcile(message)
        return
      case 'entries':
        this.#entries(message)
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
    let version: number
    try {
      version = negotiateVersion(message.versions)
    } catch (error) {
      this.#fail(error as OutpostError, CLOSE.PROTOCOL_VERSION)
      return
    }
    let principal: Principal
    try {
      principal = await context.auth.authenticate(message.token)
    } catch (error) {
      if (error instanceof TokenExpiredError) this.#fail(error, CLOSE.TOKEN_EXPIRED)
      else if (error instanceof AuthError) this.#fail(error, CLOSE.UNAUTHENTICATED)
      else throw error
      return
    }
    if (this.#state === 'closed') return
    // The relay stamps its own writes (entry processors, resolvers) with this id: nobody else may.
    if (message.replicaId === context.functions.replicaId) {
      this.#fail(new ForbiddenError(`Replica id ${message.replicaId.slice(0, 64)} is the relay's own; each device database must use its own replica id`), CLOSE.FORBIDDEN)
      return
    }
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
    this.#window = message.window
    this.#version = version
    this.#armExpiry()
    const now = context.now()
    const horizonMs = context.config.tombstoneHorizonMs
    this.send({
      type: 'welcome',
      version,
      serverTime: now,
      replicaId: message.replicaId,
      horizonMs,
      resync: message.lastSyncAt !== undefined && now - message.lastSyncAt > horizonMs,
      limits: this.#limits,
    })
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

  // ───────────────────────────── writes ─────────────────────────────

  async #ops(message: OpsMessage): Promise<PendingAck | undefined> {
    const context = this.#context
    const count = message.changes.length
    context.metrics.opsIn.inc(count)
    if (this.#limited(message.id, count)) return undefined
    // Each change is validated on its own, so a malformed one is refused alone (never its batch).
    const parsed = message.changes.map((raw): Change | OutpostError => {
      try {
        return parseChange(raw)
      } catch (error) {
        return error as OutpostError
      }
    })
    const valid = parsed.filter((c): c is Change => !isOutpostError(c))
    const maps = [...new Set(valid.map((c) => c.map))]
    const loaded = await Promise.all(maps.map((map) => context.sync.collection(map)))
    // Entry processors on these keys run first (atomic read-modify-write); checked again after each wait.
    for (let busy = context.functions.busy(valid); busy !== undefined; busy = context.functions.busy(valid)) await busy
    if (this.#state !== 'open') return undefined
    const collections = new Map(loaded.map((collection) => [collection.map, context.sync.current(collection)] as const))

    // Synchronous from here to the commit call: no other batch interleaves, so each merge sees the previous one.
    const results: (SerializedError | null)[] = []
    const puts = new Map<string, StoreEntry>()
    const meta: { key: string; value: Value }[] = []
    const applied: AppliedChange[] = []
    for (const change of parsed) {
      try {
        if (isOutpostError(change)) throw change
        const collection = collections.get(change.map)
        if (collection === undefined) throw new InternalError('collection not loaded')
        const access = this.#accessFor(change.map)
        if (!access.write) throw new ForbiddenError(`You may not write to map ${change.map}`, { map: change.map })
        if (collection.kind !== undefined && collection.kind !== change.kind) {
          throw new InvalidValueError(`Map ${change.map} holds ${collection.kind} data; this change is ${change.kind}. Use a different map name`, { map: change.map, kind: collection.kind })
        }
        if (access.filter !== undefined && change.kind !== 'lww') {
          throw new ForbiddenError(`Map ${change.map} has a row filter, which only LWW maps support; the write is refused`, { map: change.map })
        }
        // Before anything depends on whether the key exists: a key outside the key rule is refused alike.
        if (!access.keyAllowed(change.key)) {
          throw new ForbiddenError(`You may not write key ${change.key.slice(0, 64)} of map ${change.map}: it is outside the keys this map's rule gives you`, { map: change.map })
        }
        const current = collection.get(change.key)
        const pushKey = `${change.map}\u0000${change.key}`
        checkChange(change, { clock: context.clock, replicaId: this.#replicaId, current })
        const after = current === undefined ? change.state : mergeState(change.kind, current as never, change.state as never)
        // A record that would outgrow a frame could never reach its subscribers again: refuse the write that grows it.
        assertChangeFits({ ...change, state: after } as Change, this.#limits, `the record ${change.map}/${change.key.slice(0, 64)} after this write`)
        if (access.filter !== undefined) {
          if (current !== undefined && !access.visible(lwwLatest(current as LwwRecordState))) {
            throw new ForbiddenError(`You may not write record ${change.key.slice(0, 64)} of map ${change.map}`, { map: change.map })
          }
          if (!access.visible(lwwLatest(after as LwwRecordState))) {
            throw new ForbiddenError(`This write would put record ${change.key.slice(0, 64)} of map ${change.map} outside what you may write (row filter)`, { map: change.map })
          }
        }
        if (collection.kind === undefined) meta.push({ key: kindMetaKey(change.map), value: change.kind })
        collection.claimKind(change.kind)
        // A write that lost to one it had not seen goes to the map's conflict resolver, if any.
        const resolution = change.kind === 'lww' ? context.functions.resolution(change.map, change.key, current as LwwRecordState | undefined, change.state) : undefined
        const result = collection.apply(change.key, change.state as CrdtState)
        if (result !== undefined) {
          puts.set(pushKey, { collection: storeCollection(change.map), key: change.key, value: result.merged as unknown as Value })
          applied.push({
            collection,
            key: change.key,
            effects: result.effects,
            // Only compared when someone listens: most writes touch no subscription.
            writerUpToDate: resolution === undefined && result.effects.length > 0 && stateEquals(change.kind, result.merged as never, change.state as never),
          })
        }
        const resolved = resolution === undefined ? undefined : collection.apply(change.key, resolution)
        if (resolved !== undefined) {
          puts.set(pushKey, { collection: storeCollection(change.map), key: change.key, value: resolved.merged as unknown as Value })
          applied.push({ collection, key: change.key, effects: resolved.effects, writerUpToDate: false })
        }
        results.push(null)
      } catch (error) {
        if (!isOutpostError(error)) context.logger.error({ err: error }, 'unexpected error while applying a change')
        const serialized = serializeError(error)
        context.metrics.errors.inc({ code: serialized.code })
        results.push(serialized)
      }
    }
    for (const map of maps) context.sync.evictIfIdle(map)
    const ack = (): void => {
      context.metrics.acks.inc()
      this.send({ type: 'ack', id: message.id, results, serverTime: context.now() })
    }
    if (puts.size === 0 && meta.length === 0) return { settled: context.sync.barrier().then(ack) }
    const settled = context.sync.commit({ puts: [...puts.values()], meta }, maps).then(
      () => {
        ack()
        context.sync.fanOut(applied, this)
      },
      (error: unknown) => {
        const failed = serializeError(error)
        for (let i = 0; i < results.length; i++) if (results[i] === null) results[i] = failed
        this.send({ type: 'ack', id: message.id, results, serverTime: context.now() })
      },
    )
    return { settled }
  }

  // ───────────────────────────── subscriptions ─────────────────────────────

  async #subscribe(message: SubscribeMessage): Promise<void> {
    const context = this.#context
    const subError = (error: unknown): void => this.send({ type: 'error', sub: message.sub, error: serializeError(error) })
    const existing = this.#subs.get(message.sub)
    if (existing !== undefined) this.#drop(existing)
    if (this.#subs.size >= context.config.limits.maxSubscriptionsPerConnection) {
      subError(new RateLimitError(`At most ${context.config.limits.maxSubscriptionsPerConnection} subscriptions per connection`))
      return
    }
    let shape
    try {
      shape = validateShape(message.shape)
    } catch (error) {
      subError(error)
      return
    }
    const access = this.#accessFor(shape.map)
    if (!access.read) {
      subError(new ForbiddenError(`You may not read map ${shape.map}`, { map: shape.map }))
      return
    }
    const collection = context.sync.current(await context.sync.collection(shape.map))
    if (this.#state !== 'open') return
    if (collection.kind !== undefined && collection.kind !== 'lww') {
      if (shape.where !== undefined || shape.fields !== undefined || shape.orderBy !== undefined || shape.limit !== undefined) {
        subError(new QueryError(`Map ${shape.map} holds ${collection.kind} data; subscribe to it as { map } without where/fields/orderBy/limit`))
        return
      }
      if (access.filter !== undefined) {
        subError(new ForbiddenError(`Map ${shape.map} has a row filter, which only LWW maps support; it is not readable`))
        return
      }
    }
    // Subscribers share a view when both the shape and the bound rule filter agree.
    const where = andPredicates(shape.where, access.filter)
    const id = shapeKey({ ...shape, ...(where === undefined ? {} : { where }) })
    const view = collection.acquireView(id, shape, access.filter)
    const session = this
    const subscription: Subscription = {
      sub: message.sub,
      view,
      map: shape.map,
      access,
      closed: false,
      owner: this,
      kind: () => collection.kind ?? 'lww',
      deliver(changes, moveOut) {
        if (subscription.closed) return
        session.#sendChanges(subscription, changes, moveOut)
      },
    }
    view.subscribers.add(subscription)
    this.#subs.set(message.sub, subscription)
    const root = view.tree.root()
    this.send({ type: 'subscribed', sub: message.sub, root })
    const clientRoot = message.root
    if (clientRoot === undefined || clientRoot.count === 0) {
      // Streamed outside the frame chain, paced by the socket and the client's credit, so a
      // slice of any size neither holds up this session's other frames nor fills memory.
      void this.#streamSlice(subscription).catch((error: unknown) => this.#unexpected(error))
    } else if (clientRoot.hash === root.hash) {
      this.#synced(subscription)
    }
  }

  /** Sends a subscription's whole slice in paced `changes` frames, then `synced`. */
  async #streamSlice(sub: Subscription): Promise<void> {
    const kind: CollectionKind = sub.kind()
    const view = sub.view
    function* members(): Generator<Change> {
      // A live iterator: keys that leave meanwhile are skipped, fan-out covers the rest (merges commute).
      for (const key of view.tree.keys()) {
        const state = view.memberState(key)
        if (state !== undefined) yield { kind, map: sub.map, key, state } as Change
      }
    }
    for (const batch of packBySize(members(), measure, itemBudget(this.#limits), SLICE_RECORDS, (change, size) => this.#oversize(sub, change, size.bytes))) {
      await this.#paced()
      if (sub.closed || this.#state !== 'open') return
      this.#context.metrics.opsOut.inc(batch.length)
      this.#owed += this.#sendMeasured({ type: 'changes', sub: sub.sub, changes: batch, paced: true })
    }
    if (!sub.closed) this.#synced(sub)
  }

  /** Resolves when a paced frame may go: the send buffer has room and the client has credit (when it asked for flow control). */
  async #paced(): Promise<void> {
    while (this.#state === 'open') {
      if (this.#window !== undefined && this.#owed >= this.#window) {
        await new Promise<void>((resolve) => this.#creditWaiters.push(resolve))
        continue
      }
      if (this.#transport.bufferedBytes() <= SEND_LOW_WATER) return
      await new Promise<void>((resolve) => setTimeout(resolve, DRAIN_POLL_MS))
    }
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

  /** A stored record too large for any frame (stored before limits were checked): it cannot be sent; say so instead of looping. */
  #oversize(sub: Subscription, change: Change, bytes: number): void {
    this.#context.logger.warn({ map: change.map, key: change.key.slice(0, 128), bytes, maxFrameBytes: this.#limits.maxFrameBytes }, 'a stored record is too large to send to a subscriber; it is skipped')
    const error = new ValueTooLargeError(`Record ${change.map}/${change.key.slice(0, 64)} is ${bytes} bytes, too large for the relay's frame limit of ${this.#limits.maxFrameBytes} bytes; it was not sent. Make it smaller from a client with a larger limit, or raise limits.maxFrameBytes`, { map: change.map, key: change.key.slice(0, 256), bytes, maxFrameBytes: this.#limits.maxFrameBytes })
    this.send({ type: 'error', sub: sub.sub, error: serializeError(error) })
  }

  #drop(sub: Subscription): void {
    sub.closed = true
    if (this.#subs.get(sub.sub) === sub) this.#subs.delete(sub.sub)
    sub.view.subscribers.delete(sub)
    this.#context.sync.loaded(sub.map)?.releaseView(sub.view)
    this.#context.sync.evictIfIdle(sub.map)
  }

  #synced(sub: Subscription): void {
    this.send({ type: 'synced', sub: sub.sub, root: sub.view.tree.root(), serverTime: this.#context.now() })
  }

  /** The frame limits this relay applies and announces in `welcome`. */
  get #limits(): WireLimits {
    return { maxFrameBytes: this.#context.config.limits.maxFrameBytes, maxElements: DEFAULT_CODEC_LIMITS.maxElements }
  }

  /** Sends records, then move-outs, for `sub` in frames cut by exact bytes (never one frame over the limit). */
  #sendChanges(sub: Subscription, records: readonly { key: string; state: CrdtState }[], moveOut: readonly string[]): void {
    const kind: CollectionKind = sub.kind()
    // Records and move-outs share frames (one frame when they fit), records first.
    type Item = { change: Change } | { moveOut: string }
    const items: Item[] = records.map(({ key, state }) => ({ change: { kind, map: sub.map, key, state } as Change }))
    for (const key of moveOut) items.push({ moveOut: key })
    const sizeOf = (item: Item): FrameSize => ('change' in item ? measure(item.change) : keySize(item.moveOut))
    const oversize = (item: Item, size: FrameSize): void => {
      if ('change' in item) this.#oversize(sub, item.change, size.bytes)
    }
    for (const batch of packBySize(items, sizeOf, itemBudget(this.#limits), SLICE_RECORDS, oversize)) {
      const changes = batch.flatMap((item) => ('change' in item ? [item.change] : []))
      const keys = batch.flatMap((item) => ('moveOut' in item ? [item.moveOut] : []))
      this.#context.metrics.opsOut.inc(changes.length)
      this.send({ type: 'changes', sub: sub.sub, changes, ...(keys.length > 0 ? { moveOut: keys } : {}) })
    }
  }

  #subscription(id: number): Subscription | undefined {
    const sub = this.#subs.get(id)
    if (sub === undefined) {
      this.send({ type: 'error', sub: id, error: serializeError(new QueryError(`No subscription ${id}; subscribe first`)) })
    }
    return sub
  }

  /** Answers the client's differing nodes with the relay's non-empty children of each, in frames that fit (`more` on all but the last). */
  #reconcile(message: ReconcileMessage): void {
    const sub = this.#subscription(message.sub)
    if (sub === undefined) return
    this.#context.metrics.reconcileRounds.inc()
    const tree = sub.view.tree
    const nodes: MerkleNodeInfo[] = []
    const seen = new Set<string>()
    for (const node of message.nodes) {
      if (seen.has(node.path) || !/^[0-9a-f]*$/.test(node.path)) continue
      seen.add(node.path)
      nodes.push(...tree.children(node.path))
    }
    const batches = [...packBySize(nodes, nodeSize, itemBudget(this.#limits), MESSAGE_LIMITS.maxNodesPerFrame * 16)]
    if (batches.length === 0) batches.push([])
    batches.forEach((batch, i) => this.send({ type: 'nodes', sub: message.sub, nodes: batch, ...(i < batches.length - 1 ? { more: true as const } : {}) }))
  }

  /** Settles a small differing subtree: records the client lacks, keys the relay lacks, then `synced`. */
  #entries(message: EntriesMessage): void {
    const sub = this.#subscription(message.sub)
    if (sub === undefined) return
    const path = /^[0-9a-f]*$/.test(message.path) ? message.path : '\u0000'
    const view: ShapeView = sub.view
    // Only keys that really belong under `path` count: a client cannot probe other buckets through it.
    const part = message.entries.filter(([key]) => view.tree.leafPath(key).startsWith(path))
    const partialKey = `${message.sub}\u0000${path}`
    const gathered = this.#partialEntries.get(partialKey)
    const remote = gathered === undefined ? part : [...gathered, ...part]
    if (message.more === true) {
      // A list cut into several frames: answer once its last frame is in (bounded like one frame's list).
      if (remote.length > MESSAGE_LIMITS.maxKeysPerFrame) {
        this.#partialEntries.delete(partialKey)
        this.send({ type: 'error', sub: message.sub, error: serializeError(new InvalidMessageError(`An entries list of more than ${MESSAGE_LIMITS.maxKeysPerFrame} keys for one path; reconcile deeper paths instead`)) })
        return
      }
      this.#partialEntries.set(partialKey, remote as [string, string][])
      return
    }
    this.#partialEntries.delete(partialKey)
    this.#context.metrics.reconcileRounds.inc()
    const local = view.tree.entries(path)
    const diff = diffEntries(local, remote)
    const send: { key: string; state: CrdtState }[] = []
    for (const key of diff.onlyLocalOrDifferent) {
      const state = view.memberState(key)
      if (state !== undefined) send.push({ key, state })
    }
    const collection = this.#context.sync.loaded(sub.map)
    const push: string[] = []
    const moveOut: string[] = []
    for (const key of diff.onlyRemoteOrDifferent) {
      // A member the client holds differently: it may hold writes of its own the relay lacks.
      if (view.tree.has(key)) push.push(key)
      // The relay holds it but this caller's view does not (it left the shape, or the caller
      // may no longer see it), or the caller may not write it: drop it from the device.
      else if (collection?.get(key) !== undefined || !sub.access.keyAllowed(key)) moveOut.push(key)
      // The relay has never heard of it: the device may upload its own writes.
      else push.push(key)
    }
    this.#sendChanges(sub, send, moveOut)
    for (const keys of packBySize(push, keySize, itemBudget(this.#limits), MESSAGE_LIMITS.maxKeysPerFrame)) this.send({ type: 'push', sub: message.sub, keys })
    this.#synced(sub)
  }
}

/** The encoded size of one Merkle node info in a `nodes` list. */
function nodeSize(node: MerkleNodeInfo): { bytes: number; elements: number } {
  // fixmap(3) + "path" + path string + "hash" + 16-char string + "count" + uint up to 5 bytes.
  return { bytes: 1 + 5 + 1 + node.path.length + 5 + 17 + 6 + 5, elements: 3 }
}

function truncateReason(reason: string): string {
  // A WebSocket close reason is at most 123 bytes of UTF-8.
  let out = reason
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1)
  return out
}
