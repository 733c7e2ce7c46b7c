/**
 * The client side of the relay protocol (see the header of core's `protocol/messages.ts`)
 * over one WebSocket of binary msgpack frames, driven by the state machine in
 * `connection-state.ts`.
 *
 * Per connection: `hello` → `welcome` (apply the relay's clock offset; on `resync`, drop
 * every shape's data) → for each shape `subscribe {root}` → descend differing Merkle nodes
 * (`reconcile` for big nodes, `entries` for small or leaf ones), apply `changes` and
 * `moveOut`, answer `push` with `ops`; every `reconcile` is answered by one `nodes` and
 * every `entries` by one
 * `synced`, so a shape is synced when none is outstanding. The outbox goes once per
 * connection, right after the subscriptions, new writes as they commit, and unacknowledged
 * ops again on a retry timer.
 *
 * Relay URL lists: each connection goes to one URL of the list; when it fails to open or
 * is lost, the next attempt goes to the next URL at once, and backoff applies only once a
 * whole round of URLs failed in a row (reset when a session goes live). Nothing else is
 * per relay: the outbox is re-sent to whichever relay welcomes the client (merges are
 * idempotent), and requests in flight fail with `OfflineError` as on any lost connection.
 *
 * Coordination primitives (topics, locks, entry processors) use {@link SyncClient.request}:
 * a request goes out with an id from the same sequence as `ops`, and its answer (or an
 * `error` whose `ref` names it) settles it. Requests need a welcomed session (`syncing` or
 * `live`); one made while connecting waits for it, one made offline or in backoff fails
 * at once with `OfflineError`, and every request in flight when the socket drops fails
 * with `OfflineError` (the relay may or may not have acted on it).
 */
import {
  DEFAULT_WIRE_LIMITS,
  ValueTooLargeError,
  itemBudget,
  keySize,
  measure,
  packBySize,
  sizeError,
  decodeServerMessage,
  diffChildren,
  diffEntries,
  encodeMessage,
  needsEntryExchange,
  serializeError,
  PROTOCOL_VERSIONS,
  InternalError,
  OfflineError,
  TimeoutError,
  deserializeError,
  relayUrlList,
  type RelayUrlInput,
  type Change,
  type ClientMessage,
  type Hlc,
  type MerkleNodeInfo,
  type LockLostMessage,
  type SerializedError,
  type ServerMessage,
  type TopicMessage,
  type FrameSize,
  type WireLimits,
} from '@outpost/core'
import type { ConnectionState } from '../engine-api'
import type { Outbox, OutboxEntry } from '../outbox'
import { isPermanentRejection } from '../outbox'
import { backoffDelay, transition, type BackoffOptions, type ConnectionEvent } from './connection-state'
import type { ShapeReplica } from './shape-replica'

/** The part of a WebSocket the sync client uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  binaryType: string
  readonly readyState: number
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
}

/** A WebSocket constructor. */
export type WebSocketConstructor = new (url: string) => WebSocketLike

/** What the sync client needs from the engine. */
export interface SyncHost {
  readonly hlc: Hlc
  readonly replicaId: string | undefined
  readonly lastSyncAt: number | null
  shapeReplicas(): ShapeReplica[]
  pendingOps(): Outbox
  applyChanges(replica: ShapeReplica | undefined, changes: readonly Change[], moveOut: readonly string[]): Promise<void>
  resetShape(replica: ShapeReplica): Promise<void>
  recordsFor(replica: ShapeReplica, keys: readonly string[]): Change[]
  acked(ok: readonly number[], rejected: readonly (readonly [number, SerializedError])[]): Promise<void>
  /** Writes of this replica in `change` only: what a `push` reply may carry (each replica uploads its own writes). */
  ownPart?(change: Change): Change | undefined
  sent(opIds: readonly number[]): void
  synced(serverTime: number): void
  /** The relay announced its frame limits in `welcome`: writes are checked against them from now on. */
  limitsChanged(limits: WireLimits): void
  /** The clock offset was measured (welcome): re-stamp pending writes made under a wrong clock; resolves when done. */
  clockCorrected?(): Promise<void>
  connectionChanged(error?: SerializedError): void
  /** A relay message of the coordination primitives that answers no request. */
  coordinationMessage?(message: TopicMessage | LockLostMessage): void
  /**
   * A session became able to carry requests (`up`, after `welcome`) or was lost. On loss,
   * requests in flight have already failed with `OfflineError`.
   */
  sessionChanged?(up: boolean): void
  /**
   * An error without `ref` or `sub` that names a topic (`details.topic`): the relay refused
   * a topic subscription. Returns true when handled (the session then stays open).
   */
  topicRefused?(topic: string, error: SerializedError): boolean
}

/** A server message that answers a request by its `id`. */
export type RequestAnswer = Extract<ServerMessage, { type: 'topic-ack' | 'lock-granted' | 'lock-released' | 'lock-status' | 'invoke-result' }>

interface PendingRequest {
  readonly resolve: (answer: RequestAnswer) => void
  readonly reject: (error: unknown) => void
  readonly timer: ReturnType<typeof setTimeout>
  /** The request that was sent, so a late `lock-granted` can be released. */
  readonly kind: string
}

/** Requests waiting for a session while the socket connects. */
interface WaitingRequest {
  readonly send: () => void
  readonly fail: (error: unknown) => void
}

/** Options of a {@link SyncClient}. */
export interface SyncClientOptions {
  /**
   * The relay (one URL, possibly a load balancer) or a failover list tried in order: a
   * failed connect or a lost connection moves to the next URL at once, and backoff starts
   * only after a whole round of them failed. Validated by {@link relayUrlList}.
   */
  readonly url: RelayUrlInput | undefined
  readonly WebSocket: WebSocketConstructor | undefined
  readonly now: () => number
  readonly random: () => number
  readonly token: string | undefined
  readonly retryMs: number | undefined
  readonly pingMs: number | undefined
  /**
   * A connection that delivers no frame for this long (ms) is dead, even if it never
   * closed (a blackholing proxy, a sleeping laptop's NAT): the client closes it and
   * reconnects. Default {@link DEFAULT_DEAD_MS}; pings every {@link SyncClientOptions.pingMs} keep a healthy one busy.
   */
  readonly deadMs?: number | undefined
  /** A reply the relay owes (welcome, a reconciliation answer) that makes no progress for this long (ms) restarts the session. */
  readonly replyTimeoutMs?: number | undefined
  /** Wait for a token (the app's `auth` callback) before the first connect, so the first hello carries it. */
  readonly authRequired?: boolean | undefined
  readonly backoff: BackoffOptions | undefined
  /**
   * Where `online` events come from (the worker or window global by default). When the
   * network returns, a connection that is backing off retries at once instead of waiting
   * out a delay of up to 30 s.
   */
  readonly networkEvents?: NetworkEvents | undefined
}

/** Most changes per `ops` frame; frames are cut by bytes first (see `packBySize`). */
const OPS_PER_FRAME = 500
/** Default retry interval for sent, unacknowledged ops. */
const DEFAULT_RETRY_MS = 10_000
/** Default keep-alive interval: a healthy connection carries a frame at least this often. */
export const DEFAULT_PING_MS = 5_000
/** Default silence (ms) after which a connection is dead: detection within this plus one second, reconnection right after. */
export const DEFAULT_DEAD_MS = 10_000
/** Default time (ms) a reply the relay owes may make no progress before the session restarts. */
export const DEFAULT_REPLY_TIMEOUT_MS = 30_000
/** Bytes of paced frames (initial slices) this client takes unprocessed: the relay waits for `credit` beyond it. */
export const CLIENT_WINDOW_BYTES = 4 * 1024 * 1024
/** Nodes per `reconcile` frame: the relay's answer (16 children each, about 60 B per node) stays well under 1 MiB. */
const RECONCILE_NODES_PER_FRAME = 512
/** Reconciliation requests (reconcile, entries) in flight per shape; more wait for answers, so a large divergence never floods the relay's send buffer. */
const MAX_OUTSTANDING_PER_SHAPE = 16
/** Size of one `[key, digest]` pair in an `entries` list, beyond the key itself. */
const ENTRY_PAIR_SIZE: FrameSize = { bytes: 1 + 17, elements: 2 }
/** Close code the relay uses when the token expired. */
const CLOSE_TOKEN_EXPIRED = 4003

interface ShapeSession {
  readonly replica: ShapeReplica
  readonly sub: number
  subscribed: boolean
  /** Replies still expected: one `nodes` per `reconcile`, one `synced` per `entries` (or per subscribe the relay settles itself). */
  outstanding: number
  /** The paths of each `reconcile` sent, in order: a `nodes` reply answers the oldest. */
  readonly reconciles: string[][]
  /** Nodes of a `nodes` answer cut into several frames (`more`), gathered until its last frame. */
  partialNodes: MerkleNodeInfo[]
  /** Reconciliation requests waiting for room under {@link MAX_OUTSTANDING_PER_SHAPE}. */
  readonly queued: (() => void)[]
  synced: boolean
  /** The root sent with `subscribe` (none when the shape was empty locally). */
  readonly sentRoot: MerkleNodeInfo | undefined
  /** When a reply for this shape last arrived (or was first owed): the watchdog restarts a session stuck longer than the reply timeout. */
  progressAt: number
}

/** Closing a socket that never opened may throw; it is gone either way, so there is nothing to do. */
function onCloseError(error: unknown): void {
  void error
}

/** One relay connection at a time, reconnecting with backoff; see the module comment. */
export class SyncClient {
  readonly #host: SyncHost
  readonly #options: SyncClientOptions
  #state: ConnectionState = 'offline'
  #socket: WebSocketLike | undefined
  #token: string | undefined
  #authProvider: (() => Promise<string | undefined>) | undefined
  #forcedOffline = false
  /** Backoff rounds so far (reset once live): the exponent of the next backoff delay. */
  #attempt = 0
  /** The relay URLs, in failover order (empty: local only). */
  readonly #urls: readonly string[]
  /** Index in {@link #urls} of the relay this (or the next) connection goes to. */
  #urlIndex = 0
  /** Connections failed or lost in a row in the current round of URLs; a full round means backoff. */
  #roundFailures = 0
  #timer: ReturnType<typeof setTimeout> | undefined
  #retryTimer: ReturnType<typeof setInterval> | undefined
  #pingTimer: ReturnType<typeof setInterval> | undefined
  #helloAt = 0
  /** When the socket opened and when it last delivered a frame (ms), for the dead-connection check. */
  #openedAt = 0
  #lastFrameAt = 0
  #watchdog: ReturnType<typeof setInterval> | undefined
  /** The relay's frame limits (from `welcome`; the defaults before). */
  #limits: WireLimits = DEFAULT_WIRE_LIMITS
  /** The wire version the relay chose in `welcome` (of those hello offered); 1 before it. */
  #version = 1
  /** Bumped per connection attempt, so an attempt that awaited a token knows it is still current. */
  #attemptId = 0
  #nextSub = 1
  #nextReq = 1
  readonly #sessions = new Map<number, ShapeSession>()
  /** ops request id → the opIds it carried (push replies carry none). */
  readonly #requests = new Map<number, number[]>()
  #sendScheduled = false
  /** Coordination requests in flight, by request id. */
  readonly #calls = new Map<number, PendingRequest>()
  /** Requests made while connecting: sent after `welcome`, failed if the attempt fails. */
  readonly #waiting: WaitingRequest[] = []
  /** Request ids whose caller gave up (timeout): a late lock grant for one is released at once. */
  readonly #abandoned = new Map<number, string>()
  /** Frames sent on all connections (for tests that count re-sends). @internal */
  framesSent = 0
  /** Changes sent in `ops` frames (for tests and benchmarks). @internal */
  opsChangesSent = 0
  /** Message types received, for tests. @internal */
  readonly received = new Map<string, number>()

  constructor(host: SyncHost, options: SyncClientOptions) {
    this.#host = host
    this.#options = options
    this.#token = options.token
    this.#urls = relayUrlList(options.url)
  }

  /** The relay URL the current (or next) connection uses; undefined without a relay. */
  get url(): string | undefined {
    return this.#urls[this.#urlIndex]
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state
  }

  /** Begins connecting (no-op without a URL; waits for `setOffline(false)` when forced offline). */
  start(): void {
    if (this.#urls.length === 0) return
    this.#networkEvents()?.addEventListener('online', this.#onNetworkOnline)
    if (!this.#forcedOffline) this.#dispatch('start')
  }

  /** Stops for good (engine close). */
  stop(): void {
    this.#forcedOffline = true
    this.#networkEvents()?.removeEventListener('online', this.#onNetworkOnline)
    this.#dispatch('go-offline')
  }

  #networkEvents(): NetworkEvents | undefined {
    if (this.#options.networkEvents !== undefined) return this.#options.networkEvents
    const global = globalThis as Partial<NetworkEvents>
    return typeof global.addEventListener === 'function' && typeof global.removeEventListener === 'function' ? (global as NetworkEvents) : undefined
  }

  /** The network came back: a connection waiting out its backoff retries now, from a fresh backoff. */
  readonly #onNetworkOnline = (): void => {
    if (this.#state !== 'backing-off') return
    this.#attempt = 0
    this.#roundFailures = 0
    this.#dispatch('backoff-elapsed')
  }

  setToken(token: string | undefined): void {
    this.#token = token
    if (this.#state === 'auth-expired') this.#dispatch('token-refreshed')
    else if (this.#state === 'connecting' && this.#socket === undefined) this.#connect()
  }

  setAuthProvider(provider: () => Promise<string | undefined>): void {
    const first = this.#authProvider === undefined
    this.#authProvider = provider
    if (this.#state === 'auth-expired') void this.#refreshToken()
    // A connect that waited for the first token goes ahead now.
    else if (first && this.#state === 'connecting' && this.#socket === undefined) this.#connect()
  }

  setOffline(offline: boolean): void {
    this.#forcedOffline = offline
    if (this.#urls.length === 0) return
    this.#dispatch(offline ? 'go-offline' : 'go-online')
  }

  /** A local write committed: send what this connection has not sent yet (once). */
  outboxChanged(): void {
    if ((this.#state !== 'syncing' && this.#state !== 'live') || this.#sendScheduled) return
    this.#sendScheduled = true
    queueMicrotask(() => {
      this.#sendScheduled = false
      this.#sendOutbox(this.#host.pendingOps().takeUnsent(this.#options.now()))
    })
  }

  /** A shape was subscribed while connected: subscribe it on this connection too. */
  shapeAdded(replica: ShapeReplica): void {
    if (this.#state !== 'syncing' && this.#state !== 'live') return
    for (const s of this.#sessions.values()) if (s.replica === replica) return
    // The connection stays `live` while a shape added later catches up: writes and other shapes are unaffected.
    this.#subscribe(replica)
  }

  /**
   * Reconciles these shapes again now (their local data changed in a way only the relay can
   * complete, e.g. a refused write was taken back): a fresh subscription on this connection
   * descends from the current roots. Offline, the next connection does it anyway.
   */
  repair(replicas: readonly ShapeReplica[]): void {
    if (this.#state !== 'syncing' && this.#state !== 'live') return
    const wanted = new Set(replicas)
    // Collected first: subscribing adds sessions to the map being read.
    const stale = [...this.#sessions].filter(([, s]) => wanted.has(s.replica))
    for (const [sub, s] of stale) {
      this.#sessions.delete(sub)
      this.#send({ type: 'unsubscribe', sub })
      this.#subscribe(s.replica)
    }
  }

  shapeRemoved(replica: ShapeReplica): void {
    for (const [sub, s] of this.#sessions) {
      if (s.replica !== replica) continue
      this.#sessions.delete(sub)
      this.#send({ type: 'unsubscribe', sub })
    }
    this.#checkSynced()
  }

  /** True when a welcomed session can carry requests and topic subscriptions. */
  get sessionOpen(): boolean {
    return (this.#state === 'syncing' || this.#state === 'live') && this.#socket !== undefined
  }

  /**
   * Sends a one-way coordination message (`topic-sub`, `topic-unsub`) on the current
   * session; false when there is none (the caller re-sends after the next `welcome`).
   */
  sendControl(message: ClientMessage): boolean {
    if (!this.sessionOpen) return false
    this.#send(message)
    return true
  }

  /**
   * Sends a coordination request built with a fresh request id and resolves with its
   * answer. Rejects with the relay's typed error (`error {ref}`), `OfflineError` when there
   * is no session (or it drops while waiting), or `TimeoutError` after `timeoutMs`.
   */
  request(build: (id: number) => ClientMessage, timeoutMs: number): Promise<RequestAnswer> {
    return new Promise<RequestAnswer>((resolve, reject) => {
      const go = (): void => {
        const id = this.#nextReq++
        const message = build(id)
        const timer = setTimeout(() => {
          this.#calls.delete(id)
          this.#abandoned.set(id, message.type)
          reject(new TimeoutError(`the relay did not answer ${message.type} within ${timeoutMs} ms; retry when the connection is stable`, { request: message.type, timeoutMs }))
        }, timeoutMs)
        this.#calls.set(id, { resolve, reject, timer, kind: message.type })
        try {
          this.#send(message)
        } catch (error) {
          // Too large to send: the caller gets the typed error, the connection is untouched.
          clearTimeout(timer)
          this.#calls.delete(id)
          reject(error)
        }
      }
      if (this.sessionOpen) {
        go()
        return
      }
      if (this.#urls.length > 0 && (this.#state === 'connecting' || this.#state === 'handshaking')) {
        // Starting up: wait for the session rather than failing a call made a moment too early.
        const timer = setTimeout(() => {
          const at = this.#waiting.indexOf(waiting)
          if (at >= 0) this.#waiting.splice(at, 1)
          reject(new OfflineError(`the relay was not reachable within ${timeoutMs} ms; this needs a connection to the relay`))
        }, timeoutMs)
        const waiting: WaitingRequest = {
          send: () => {
            clearTimeout(timer)
            go()
          },
          fail: (error) => {
            clearTimeout(timer)
            reject(error)
          },
        }
        this.#waiting.push(waiting)
        return
      }
      reject(new OfflineError(this.#urls.length === 0 ? 'this client has no relay URL; topics to other devices, locks and entry processors need one' : `the client is offline (${this.#state}); locks and entry processors need a connection to the relay`, { state: this.#state }))
    })
  }

  #failRequests(reason: string): void {
    const error = new OfflineError(`the connection to the relay was lost (${reason}) before it answered; the relay may or may not have acted on the request`)
    for (const [id, call] of this.#calls) {
      clearTimeout(call.timer)
      this.#calls.delete(id)
      call.reject(error)
    }
    this.#abandoned.clear()
  }

  #failWaiting(state: ConnectionState): void {
    const waiting = this.#waiting.splice(0)
    const error = new OfflineError(`the relay is not reachable (${state}); this needs a connection to the relay`, { state })
    for (const w of waiting) w.fail(error)
  }

  // ───────────────────────────── state machine effects ─────────────────────────────

  #dispatch(event: ConnectionEvent, error?: SerializedError): void {
    const from = this.#state
    const to = transition(from, event)
    if (to === from) return
    this.#state = to
    this.#exit(from)
    this.#enter(to)
    if (to === 'offline' || to === 'backing-off' || to === 'auth-expired') this.#failWaiting(to)
    this.#host.connectionChanged(error)
  }

  #exit(from: ConnectionState): void {
    if (from === 'backing-off' && this.#timer !== undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  #enter(state: ConnectionState): void {
    switch (state) {
      case 'connecting':
        this.#connect()
        return
      case 'backing-off': {
        this.#teardown()
        // Another relay of the list is tried at once; only a round in which all failed waits.
        const delay = this.#failover() ? 0 : backoffDelay(this.#attempt++, this.#options.random, this.#options.backoff)
        this.#timer = setTimeout(() => {
          this.#timer = undefined
          this.#dispatch('backoff-elapsed')
        }, delay)
        return
      }
      case 'auth-expired':
        this.#teardown()
        void this.#refreshToken()
        return
      case 'offline':
        this.#teardown()
        return
      case 'live':
        this.#attempt = 0
        this.#roundFailures = 0
        return
      default:
        return
    }
  }

  /**
   * The connection to the current URL failed or was lost: moves to the next URL of the
   * list. True when that URL has not failed yet in this round (connect to it now); false
   * when the round is complete (or there is one URL), so the caller backs off first.
   */
  #failover(): boolean {
    if (this.#urls.length <= 1) return false
    this.#urlIndex = (this.#urlIndex + 1) % this.#urls.length
    this.#roundFailures++
    if (this.#roundFailures < this.#urls.length) return true
    this.#roundFailures = 0
    return false
  }

  async #refreshToken(): Promise<void> {
    const provider = this.#authProvider
    if (provider === undefined) return // waits for setToken / setAuthProvider
    try {
      const token = await provider()
      if (this.#state !== 'auth-expired') return
      this.#token = token
      this.#dispatch('token-refreshed')
    } catch (error) {
      this.#dispatch('error', serializeError(error))
    }
  }

  #connect(): void {
    const attempt = ++this.#attemptId
    if (this.#token === undefined && this.#options.authRequired === true) {
      // The first hello carries the token: wait for the app's auth callback (registered by the first tab).
      const provider = this.#authProvider
      if (provider === undefined) return // setAuthProvider / setToken connects
      void provider().then(
        (token) => {
          if (this.#state !== 'connecting' || this.#attemptId !== attempt) return
          this.#token = token
          this.#openSocket()
        },
        (error: unknown) => {
          if (this.#state === 'connecting' && this.#attemptId === attempt) this.#dispatch('error', serializeError(error))
        },
      )
      return
    }
    this.#openSocket()
  }

  #openSocket(): void {
    const Ctor = this.#options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    const url = this.url
    if (Ctor === undefined || url === undefined) {
      this.#dispatch('error', serializeError(new InternalError('no WebSocket implementation available')))
      return
    }
    let socket: WebSocketLike
    try {
      socket = new Ctor(url)
    } catch (error) {
      queueMicrotask(() => this.#dispatch('error', serializeError(error)))
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    this.#openedAt = this.#lastFrameAt = this.#options.now()
    this.#startWatchdog()
    socket.onopen = () => {
      if (this.#socket !== socket) return
      this.#lastFrameAt = this.#options.now()
      this.#dispatch('socket-open')
      this.#hello()
    }
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return
      this.#onFrame(event.data)
    }
    socket.onclose = (event) => {
      if (this.#socket !== socket) return
      this.#socket = undefined
      if (event.code === CLOSE_TOKEN_EXPIRED) this.#dispatch('token-expired')
      else this.#dispatch('socket-closed')
    }
    socket.onerror = () => {
      // The close event follows and carries the outcome.
    }
  }

  #teardown(): void {
    const socket = this.#socket
    this.#socket = undefined
    this.#version = 1
    if (socket !== undefined) {
      socket.onopen = socket.onmessage = socket.onclose = null
      // Keep an error handler: closing a socket that is still connecting emits an error
      // (Node's `ws` throws an unhandled one when no listener is left).
      socket.onerror = ignoreErrorAfterTeardown
      try {
        socket.close(1000, 'client closing')
      } catch (error) {
        onCloseError(error)
      }
    }
    if (this.#retryTimer !== undefined) clearInterval(this.#retryTimer)
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer)
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#retryTimer = this.#pingTimer = this.#watchdog = undefined
    this.#sessions.clear()
    this.#requests.clear()
    this.#host.pendingOps().resetConnection()
    this.#failRequests('socket closed')
    if (this.#sessionUp) {
      this.#sessionUp = false
      this.#host.sessionChanged?.(false)
    }
  }

  /** True between `welcome` and the teardown of that session. */
  #sessionUp = false

  /**
   * Sends one message. Throws {@link ValueTooLargeError} (and sends nothing) when its frame
   * exceeds the relay's limit: a frame the relay would close the connection for is never
   * sent, so nothing can make the client reconnect in a loop.
   */
  #send(message: ClientMessage): void {
    const socket = this.#socket
    if (socket === undefined || socket.readyState !== 1) return
    const frame = encodeMessage(message, this.#version)
    if (frame.length > this.#limits.maxFrameBytes) {
      throw new ValueTooLargeError(`This ${message.type} message encodes to ${frame.length} bytes, over the relay's frame limit of ${this.#limits.maxFrameBytes} bytes; make it smaller`, {
        bytes: frame.length,
        maxFrameBytes: this.#limits.maxFrameBytes,
        type: message.type,
      })
    }
    socket.send(frame)
    this.framesSent++
  }

  /**
   * One timer per connection: pings while welcomed, declares a silent connection dead
   * (no frame for `deadMs`, including a connect or hello that never completes), and
   * restarts a session whose owed reconciliation reply made no progress for `replyTimeoutMs`.
   */
  #startWatchdog(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    const pingMs = this.#options.pingMs ?? DEFAULT_PING_MS
    const deadMs = this.#options.deadMs ?? DEFAULT_DEAD_MS
    const replyMs = this.#options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS
    let pingedAt = 0
    this.#watchdog = setInterval(() => {
      const now = this.#options.now()
      if (this.#socket === undefined) return
      if (now - this.#lastFrameAt > deadMs) {
        const what = this.#state === 'connecting' ? 'the connection did not open' : this.#state === 'handshaking' ? 'the relay did not answer hello' : 'no frame arrived from the relay'
        this.#dispatch('error', serializeError(new TimeoutError(`${what} within ${deadMs} ms; reconnecting`, { deadMs, state: this.#state })))
        return
      }
      for (const session of this.#sessions.values()) {
        if (session.outstanding > 0 && now - session.progressAt > replyMs) {
          this.#dispatch('error', serializeError(new TimeoutError(`the relay's reconciliation answer for a shape made no progress within ${replyMs} ms; restarting the session`, { replyTimeoutMs: replyMs })))
          return
        }
      }
      if (this.#sessionUp && now - pingedAt >= pingMs) {
        pingedAt = now
        this.#send({ type: 'ping', clientTime: now })
      }
    }, Math.max(50, Math.min(1_000, Math.floor(Math.min(pingMs, deadMs) / 4))))
  }

  #hello(): void {
    this.#helloAt = this.#options.now()
    const lastSyncAt = this.#host.lastSyncAt
    this.#send({
      type: 'hello',
      versions: [...PROTOCOL_VERSIONS],
      ...(this.#token === undefined ? {} : { token: this.#token }),
      replicaId: this.#host.replicaId as never,
      clientTime: this.#helloAt,
      ...(lastSyncAt === null ? {} : { lastSyncAt }),
      window: CLIENT_WINDOW_BYTES,
    })
  }

  // ───────────────────────────── inbound ─────────────────────────────

  #onFrame(data: unknown): void {
    this.#lastFrameAt = this.#options.now()
    let message: ServerMessage
    let length: number
    try {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array)
      length = bytes.length
      message = decodeServerMessage(bytes, this.#limits, this.#version)
      // Set on arrival, not when the handler chain reaches it: the frames behind it are in this version.
      if (message.type === 'welcome') this.#version = message.version
    } catch (error) {
      // A frame we cannot read: the session is out of step, start a fresh one.
      this.#dispatch('error', serializeError(error))
      return
    }
    this.received.set(message.type, (this.received.get(message.type) ?? 0) + 1)
    void this.#handle(message, length).catch((error: unknown) => this.#dispatch('error', serializeError(error)))
  }

  /** Messages are handled in arrival order: each waits for the previous one's store work. */
  #chain: Promise<void> = Promise.resolve()

  #handle(message: ServerMessage, length: number): Promise<void> {
    const run = this.#chain.then(() => this.#handleNow(message, length))
    this.#chain = run.catch(() => undefined)
    return run
  }

  async #handleNow(message: ServerMessage, length: number): Promise<void> {
    switch (message.type) {
      case 'welcome':
        return this.#onWelcome(message.serverTime, message.resync, message.limits)
      case 'subscribed':
        return this.#onSubscribed(message.sub, message.root)
      case 'nodes':
        return this.#onNodes(message.sub, message.nodes, message.more === true)
      case 'changes': {
        const session = this.#sessions.get(message.sub)
        if (session !== undefined) session.progressAt = this.#options.now()
        await this.#host.applyChanges(session?.replica, message.changes, message.moveOut ?? [])
        // Paced frames (a slice) are paid back once applied, so the relay sends the next.
        if (message.paced === true) this.#send({ type: 'credit', bytes: Math.max(1, length) })
        return
      }
      case 'push': {
        const session = this.#sessions.get(message.sub)
        if (session === undefined) return
        // Each replica uploads its own writes: the relay accepts no other replica's registers from us.
        const records = this.#host.recordsFor(session.replica, message.keys).flatMap((change) => {
          const own = this.#host.ownPart === undefined ? change : this.#host.ownPart(change)
          return own === undefined ? [] : [own]
        })
        for (const batch of packBySize(records, measure, itemBudget(this.#limits), OPS_PER_FRAME)) {
          const id = this.#nextReq++
          this.#requests.set(id, [])
          this.#send({ type: 'ops', id, changes: batch })
          this.opsChangesSent += batch.length
        }
        return
      }
      case 'synced': {
        const session = this.#sessions.get(message.sub)
        if (session === undefined) return
        session.progressAt = this.#options.now()
        session.outstanding = Math.max(0, session.outstanding - 1)
        this.#pumpRequests(session)
        if (session.outstanding === 0) {
          session.synced = true
          this.#host.synced(message.serverTime)
        }
        this.#checkSynced()
        return
      }
      case 'resync': {
        const session = this.#sessions.get(message.sub)
        if (session === undefined) return
        this.#sessions.delete(message.sub)
        this.#send({ type: 'unsubscribe', sub: message.sub })
        await this.#host.resetShape(session.replica)
        this.#subscribe(session.replica)
        return
      }
      case 'ack':
        return this.#onAck(message.id, message.results)
      case 'error':
        return this.#onError(message.error, message.ref, message.sub)
      case 'topic-ack':
      case 'lock-granted':
      case 'lock-released':
      case 'lock-status':
      case 'invoke-result':
        this.#onAnswer(message)
        return
      case 'topic-msg':
      case 'lock-lost':
        this.#host.coordinationMessage?.(message)
        return
      case 'pong': {
        const now = this.#options.now()
        this.#host.hlc.offset = message.serverTime + (now - message.clientTime) / 2 - now
        // While live, fan-out has kept this replica current: it is synced as of now.
        if (this.#state === 'live') this.#host.synced(message.serverTime)
        return
      }
    }
  }

  async #onWelcome(serverTime: number, resync: boolean, limits: WireLimits | undefined): Promise<void> {
    const now = this.#options.now()
    // The relay's clock at "now" is about serverTime plus half the round trip.
    this.#host.hlc.offset = serverTime + (now - this.#helloAt) / 2 - now
    if (limits !== undefined) {
      this.#limits = { maxFrameBytes: limits.maxFrameBytes, maxElements: limits.maxElements }
      this.#host.limitsChanged(this.#limits)
    }
    // Pending writes stamped under a wrong clock are re-stamped before anything is reconciled or sent.
    const socket = this.#socket
    await this.#host.clockCorrected?.()
    if (this.#socket !== socket || this.#state !== 'handshaking') return
    this.#dispatch('welcome')
    if (resync) for (const replica of this.#host.shapeReplicas()) await this.#host.resetShape(replica)
    for (const replica of this.#host.shapeReplicas()) this.#subscribe(replica)
    this.#host.pendingOps().resetConnection()
    this.#sendOutbox(this.#host.pendingOps().takeUnsent(this.#options.now()))
    const retryMs = this.#options.retryMs ?? DEFAULT_RETRY_MS
    this.#retryTimer = setInterval(() => this.#sendOutbox(this.#host.pendingOps().takeDue(this.#options.now(), retryMs)), Math.max(10, Math.floor(retryMs / 2)))
    this.#sessionUp = true
    this.#host.sessionChanged?.(true)
    for (const waiting of this.#waiting.splice(0)) waiting.send()
    this.#checkSynced()
  }

  #subscribe(replica: ShapeReplica): void {
    const sub = this.#nextSub++
    const root = replica.tree.root()
    const session: ShapeSession = {
      replica,
      sub,
      subscribed: false,
      // The `subscribed` answer is owed from now: the watchdog covers it like any reply.
      outstanding: 1,
      reconciles: [],
      partialNodes: [],
      queued: [],
      synced: false,
      sentRoot: root.count === 0 ? undefined : root,
      progressAt: this.#options.now(),
    }
    this.#sessions.set(sub, session)
    try {
      this.#send({ type: 'subscribe', sub, shape: replica.shape, ...(root.count === 0 ? {} : { root }) })
    } catch (error) {
      // A shape too large to send can never be subscribed: report it, keep the connection.
      this.#sessions.delete(sub)
      this.#host.connectionChanged(serializeError(error))
    }
  }

  #onSubscribed(sub: number, remoteRoot: MerkleNodeInfo): void {
    const session = this.#sessions.get(sub)
    if (session === undefined) return
    session.subscribed = true
    session.outstanding = Math.max(0, session.outstanding - 1)
    session.progressAt = this.#options.now()
    const sent = session.sentRoot
    if (sent === undefined || sent.hash === remoteRoot.hash) {
      // The relay settles these itself: the whole slice (empty client) or nothing, then `synced`.
      session.outstanding++
      return
    }
    this.#descend(session, [[session.replica.tree.root(), remoteRoot]])
  }

  #onNodes(sub: number, part: readonly MerkleNodeInfo[], more: boolean): void {
    const session = this.#sessions.get(sub)
    if (session === undefined) return
    session.progressAt = this.#options.now()
    if (more) {
      // An answer cut to fit the frame limit: gather it until its last frame.
      session.partialNodes.push(...part)
      return
    }
    const remoteNodes = session.partialNodes.length === 0 ? part : [...session.partialNodes, ...part]
    session.partialNodes = []
    session.outstanding = Math.max(0, session.outstanding - 1)
    this.#pumpRequests(session)
    const tree = session.replica.tree
    const asked = session.reconciles.shift() ?? []
    const byParent = new Map<string, MerkleNodeInfo[]>(asked.map((path) => [path, []]))
    for (const node of remoteNodes) {
      if (node.path.length === 0) continue
      byParent.get(node.path.slice(0, -1))?.push(node)
    }
    const pairs: [MerkleNodeInfo, MerkleNodeInfo][] = []
    for (const [parent, children] of byParent) {
      // A parent the relay holds nothing under comes back without children: every local child differs.
      const remote = new Map(children.map((c) => [c.path, c]))
      for (const local of diffChildren(tree, parent, children)) {
        pairs.push([local, remote.get(local.path) ?? { path: local.path, hash: '0000000000000000', count: 0 }])
      }
    }
    this.#descend(session, pairs)
  }

  /**
   * Settles differing nodes: small or leaf ones by entry exchange, big ones by asking for
   * children. Requests queue per shape and at most {@link MAX_OUTSTANDING_PER_SHAPE} are in
   * flight, so however large the divergence, the relay's answers arrive as they are asked for.
   */
  #descend(session: ShapeSession, pairs: readonly (readonly [MerkleNodeInfo, MerkleNodeInfo])[]): void {
    const tree = session.replica.tree
    const reconcile: MerkleNodeInfo[] = []
    for (const [local, remote] of pairs) {
      if (needsEntryExchange(local, remote, tree.depth)) {
        session.queued.push(() => this.#sendEntries(session, local.path))
      } else {
        reconcile.push(local)
      }
    }
    for (let i = 0; i < reconcile.length; i += RECONCILE_NODES_PER_FRAME) {
      const nodes = reconcile.slice(i, i + RECONCILE_NODES_PER_FRAME)
      session.queued.push(() => {
        session.reconciles.push(nodes.map((n) => n.path))
        this.#send({ type: 'reconcile', sub: session.sub, nodes })
      })
    }
    this.#pumpRequests(session)
    session.synced = session.outstanding === 0 && session.queued.length === 0
    this.#checkSynced()
  }

  /** Sends queued reconciliation requests while fewer than {@link MAX_OUTSTANDING_PER_SHAPE} are unanswered. */
  #pumpRequests(session: ShapeSession): void {
    while (session.outstanding < MAX_OUTSTANDING_PER_SHAPE && session.queued.length > 0) {
      const send = session.queued.shift() as () => void
      if (session.outstanding === 0) session.progressAt = this.#options.now()
      session.outstanding++
      send()
    }
  }

  /** The `[key, digest]` list under `path`, cut into frames by bytes (`more` on all but the last). */
  #sendEntries(session: ShapeSession, path: string): void {
    const entries = session.replica.tree.entries(path)
    const budget = itemBudget(this.#limits)
    const batches = [...packBySize(entries, ([key]) => ({ bytes: keySize(key).bytes + ENTRY_PAIR_SIZE.bytes, elements: ENTRY_PAIR_SIZE.elements }), budget, 50_000)]
    if (batches.length === 0) batches.push([])
    batches.forEach((batch, i) => {
      this.#send({ type: 'entries', sub: session.sub, path, entries: batch, ...(i < batches.length - 1 ? { more: true as const } : {}) })
    })
  }

  async #onAck(id: number, results: readonly (SerializedError | null)[]): Promise<void> {
    const opIds = this.#requests.get(id)
    if (opIds === undefined) return
    this.#requests.delete(id)
    const ok: number[] = []
    const rejected: [number, SerializedError][] = []
    opIds.forEach((opId, i) => {
      const result = results[i]
      if (result === null) ok.push(opId)
      else if (result !== undefined && isPermanentRejection(result)) rejected.push([opId, result])
      // Anything else (rate limit, store failure, missing result) waits for the retry timer.
    })
    if (ok.length > 0 || rejected.length > 0) await this.#host.acked(ok, rejected)
  }

  #onAnswer(message: RequestAnswer): void {
    const call = this.#calls.get(message.id)
    if (call === undefined) {
      // The caller timed out before the grant arrived: nobody will use this lease, so hand it back now.
      if (message.type === 'lock-granted' && this.#abandoned.get(message.id) === 'lock-acquire') {
        this.#send({ type: 'lock-release', id: this.#nextReq++, name: message.name, token: message.token })
      }
      this.#abandoned.delete(message.id)
      return
    }
    this.#calls.delete(message.id)
    clearTimeout(call.timer)
    call.resolve(message)
  }

  async #onError(error: SerializedError, ref: number | undefined, sub: number | undefined): Promise<void> {
    if (ref !== undefined) {
      const call = this.#calls.get(ref)
      if (call !== undefined) {
        this.#calls.delete(ref)
        clearTimeout(call.timer)
        call.reject(deserializeError(error))
        return
      }
      if (this.#abandoned.delete(ref)) return
      const opIds = this.#requests.get(ref)
      if (opIds !== undefined && isPermanentRejection(error)) {
        this.#requests.delete(ref)
        await this.#host.acked([], opIds.map((opId) => [opId, error] as const))
      }
      this.#host.connectionChanged(error)
      return
    }
    if (sub !== undefined) {
      const session = this.#sessions.get(sub)
      if (session === undefined) return
      // One record the relay cannot send (stored too large): reported, the slice goes on.
      if (error.code === 'VALUE_TOO_LARGE') {
        this.#host.connectionChanged(error)
        return
      }
      // A shape the relay refuses must not hold the connection out of `live`.
      this.#sessions.delete(sub)
      // The user may no longer read it (rules or claims changed): what this device holds of it goes.
      if (error.code === 'FORBIDDEN') await this.#host.resetShape(session.replica)
      this.#host.connectionChanged(error)
      this.#checkSynced()
      return
    }
    const topic = error.details?.['topic']
    if (typeof topic === 'string' && this.#host.topicRefused?.(topic, error) === true) return
    if (error.code === 'TOKEN_EXPIRED' || error.code === 'UNAUTHENTICATED') this.#dispatch('token-expired', error)
    else this.#dispatch('error', error)
  }

  #serverNow(): number {
    return this.#options.now() + this.#host.hlc.offset
  }

  #checkSynced(): void {
    if (this.#state !== 'syncing') return
    for (const s of this.#sessions.values()) if (!s.subscribed || !s.synced) return
    this.#host.synced(this.#serverNow())
    this.#dispatch('synced')
  }

  /**
   * Sends outbox entries in `ops` frames cut by bytes. An entry that cannot fit a frame on
   * its own (written under larger limits, or before limits were checked) is rejected here
   * with VALUE_TOO_LARGE like a relay refusal, so it never blocks the entries behind it.
   */
  #sendOutbox(entries: readonly OutboxEntry[]): void {
    if (entries.length === 0 || this.#socket === undefined) return
    const oversize: [number, SerializedError][] = []
    const batches = packBySize(entries, (e) => measureEntry(e), itemBudget(this.#limits), OPS_PER_FRAME, (e, size) => {
      const error = sizeError(size, this.#limits, `the pending write ${e.change.map}/${e.change.key.slice(0, 64)}`)
      oversize.push([e.opId, serializeError(error ?? new ValueTooLargeError('this write is too large to send'))])
    })
    for (const chunk of batches) {
      const id = this.#nextReq++
      this.#requests.set(
        id,
        chunk.map((e) => e.opId),
      )
      this.#send({ type: 'ops', id, changes: chunk.map((e) => e.change) })
      this.opsChangesSent += chunk.length
      this.#host.sent(chunk.map((e) => e.opId))
    }
    if (oversize.length > 0) void this.#host.acked([], oversize).catch((error: unknown) => this.#host.connectionChanged(serializeError(error)))
  }
}

/** Exact sizes of outbox changes, measured once per entry (an entry is immutable; retries re-send it). */
const entrySizes = new WeakMap<OutboxEntry, FrameSize>()

function measureEntry(entry: OutboxEntry): FrameSize {
  let size = entrySizes.get(entry)
  if (size === undefined) {
    size = measure(entry.change)
    entrySizes.set(entry, size)
  }
  return size
}

/** Errors a socket reports after we tore it down carry nothing we act on: the connection is already gone. */
function ignoreErrorAfterTeardown(): void {}

/** The part of `EventTarget` the sync client uses to hear that the network is back. */
export interface NetworkEvents {
  addEventListener(type: 'online', listener: () => void): void
  removeEventListener(type: 'online', listener: () => void): void
}
