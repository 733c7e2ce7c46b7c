/**
 * The client side of the relay protocol (see the header of core's `protocol/messages.ts`):
 * a thin facade over four parts, each in its own file —
 *   - `connection.ts`: one socket at a time, the URL failover list, the state machine's
 *     effects (diagram there and in `connection-state.ts`), hello, watchdog, framing;
 *   - `shape-sync.ts`: each shape's subscription (resume by cursor, slice, or Merkle
 *     descent) and its durable cursor;
 *   - `outbox-sender.ts`: local writes as `ops`, acks, retries;
 *   - `request-channel.ts`: requests of the coordination primitives and their answers.
 *
 * This file owns what spans them: the session (from `welcome` to the socket's end), the
 * routing of inbound messages, and the point where a session becomes `live` (every
 * shape synced).
 *
 * Per session: `welcome` (apply the relay's clock offset and frame limits, re-stamp
 * pending writes made under a wrong clock; on `resync`, drop every shape's data) → every
 * shape subscribes → the outbox goes (unacknowledged writes re-sent to whichever relay
 * answered: merges are idempotent) → requests that waited for a session go.
 */
import type { Change, ClientMessage, Hlc, LockLostMessage, RelayUrlInput, SerializedError, ServerMessage, TopicMessage, WireLimits } from '@outpost/core'
import type { ConnectionState } from '../engine-api'
import type { Outbox } from '../outbox'
import type { BackoffOptions } from './connection-state'
import { Connection } from './connection'
import type { NetworkEvents, WebSocketConstructor } from './web-socket'
import { OutboxSender } from './outbox-sender'
import { RequestChannel, type RequestAnswer } from './request-channel'
import type { ShapeReplica } from './shape-replica'
import type { Bulk } from './shape-session'
import { ShapeSync, type ResumeMode } from './shape-sync'

export { CLIENT_WINDOW_BYTES } from './connection'
export { DEFAULT_DEAD_MS, DEFAULT_PING_MS, DEFAULT_REPLY_TIMEOUT_MS } from './watchdog'
export type { NetworkEvents, WebSocketConstructor, WebSocketLike } from './web-socket'
export type { RequestAnswer } from './request-channel'
export { DEFAULT_ANTI_ENTROPY_MS } from './shape-sync'
export type { ResumeMode } from './shape-sync'

/** What the sync client needs from the engine. */
export interface SyncHost {
  readonly hlc: Hlc
  readonly replicaId: string | undefined
  readonly lastSyncAt: number | null
  shapeReplicas(): ShapeReplica[]
  pendingOps(): Outbox
  applyChanges(replica: ShapeReplica | undefined, changes: readonly Change[], moveOut: readonly string[], bulk?: Bulk): Promise<void>
  resetShape(replica: ShapeReplica): Promise<void>
  recordsFor(replica: ShapeReplica, keys: readonly string[]): Change[]
  acked(ok: readonly number[], rejected: readonly (readonly [number, SerializedError])[]): Promise<void>
  /**
   * Keeps `cursor` as the shape's resume cursor, durably and only once the data it covers
   * is in the store; `undefined` drops it (durably, before resolving). Without it the
   * client never sends a cursor.
   */
  saveCursor?(replica: ShapeReplica, cursor: string | undefined): Promise<void>
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

/** Options of a {@link SyncClient}. */
export interface SyncClientOptions {
  /**
   * The relay (one URL, possibly a load balancer) or a failover list tried in order: a
   * failed connect or a lost connection moves to the next URL at once, and backoff starts
   * only after a whole round of them failed. Validated by core's `relayUrlList`.
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
   * reconnects. Default `DEFAULT_DEAD_MS`; pings every {@link SyncClientOptions.pingMs} keep a healthy one busy.
   */
  readonly deadMs?: number | undefined
  /** A reply the relay owes (welcome, a reconciliation answer) that makes no progress for this long (ms) restarts the session. */
  readonly replyTimeoutMs?: number | undefined
  /**
   * While live, each idle shape's root is compared with the relay's this often (ms), so a
   * change lost inside an open connection is repaired without a reconnect (see
   * `shape-sync.ts`). Default `DEFAULT_ANTI_ENTROPY_MS` (30 s).
   */
  readonly antiEntropyMs?: number | undefined
  /** Wait for a token (the app's `auth` callback) before the first connect, so the first hello carries it. */
  readonly authRequired?: boolean | undefined
  readonly backoff: BackoffOptions | undefined
  /**
   * Where `online` events come from (the worker or window global by default). When the
   * network returns, a connection that is backing off retries at once instead of waiting
   * out a delay of up to 30 s.
   */
  readonly networkEvents?: NetworkEvents | undefined
  /** Schema versions announced in `hello` (see `EngineOptions.schemaVersions`). */
  readonly schemaVersions?: Readonly<Record<string, number>> | undefined
}

/** What crossed the wire, for tests and benchmarks. @internal */
export interface SyncStats {
  /** Frames sent on all connections. */
  readonly framesSent: number
  /** Changes sent in `ops` frames. */
  readonly opsChangesSent: number
  /** Frames received on all connections. */
  readonly framesReceived: number
  /** Bytes of the frames received. */
  readonly bytesReceived: number
  /** Subscriptions answered per resume mode. */
  readonly resumes: Readonly<Record<ResumeMode, number>>
  /** Live anti-entropy: shapes caught up after a lost live frame, root checks made, and those that found a difference. */
  readonly antiEntropy: Readonly<{ gaps: number; checks: number; checksDiffered: number }>
}

/** One relay connection at a time, reconnecting with backoff and failing over; see the module comment. */
export class SyncClient {
  readonly #host: SyncHost
  readonly #options: SyncClientOptions
  readonly #connection: Connection
  readonly #shapes: ShapeSync
  readonly #outbox: OutboxSender
  readonly #requests: RequestChannel
  /** Ids of `ops` and of coordination requests: one sequence, so an `error {ref}` names one of them. */
  #nextReq = 1
  /** True between `welcome` and the end of that session. */
  #sessionUp = false
  /** This session's relay takes a subscribe with a cursor and no root (`welcome.cursorWithoutRoot`). */
  #cursorWithoutRoot = false

  constructor(host: SyncHost, options: SyncClientOptions) {
    this.#host = host
    this.#options = options
    const client = this
    this.#connection = new Connection(
      {
        hello: () => ({ replicaId: host.replicaId, lastSyncAt: host.lastSyncAt, schemas: options.schemaVersions }),
        message: (message, length) => this.#handle(message, length),
        sessionEnded: () => this.#sessionEnded(),
        stalled: (now, replyMs) => this.#shapes.stalled(now, replyMs),
        tick: (now) => {
          this.#shapes.tick(now)
          // A safety net: `syncing` with every shape synced becomes `live` even if no answer says so again.
          this.#checkSynced()
        },
        get sessionUp() {
          return client.#sessionUp
        },
        changed: (error) => host.connectionChanged(error),
        unreachable: (state) => this.#requests.failWaiting(state),
      },
      options,
    )
    const connection = this.#connection
    const nextId = (): number => this.#nextReq++
    const now = options.now
    this.#outbox = new OutboxSender(
      host,
      {
        get active() {
          return client.#active
        },
        get hasSocket() {
          return connection.socket !== undefined
        },
        get limits() {
          return connection.frames.limits
        },
        send: (message) => connection.send(message),
        nextId,
        now,
      },
      options.retryMs,
    )
    this.#shapes = new ShapeSync(host, {
      get active() {
        return client.#active
      },
      get limits() {
        return connection.frames.limits
      },
      get cursorWithoutRoot() {
        return client.#cursorWithoutRoot
      },
      send: (message) => connection.send(message),
      now,
      sendRecords: (records) => this.#outbox.sendRecords(records),
      progressed: () => this.#checkSynced(),
    }, options.antiEntropyMs)
    this.#requests = new RequestChannel({
      get state() {
        return connection.state
      },
      get hasRelay() {
        return connection.hasRelay
      },
      get sessionOpen() {
        return client.sessionOpen
      },
      send: (message) => connection.send(message),
      nextId,
    })
  }

  /** True in `syncing` and `live`: a welcomed session subscribes shapes and sends writes. */
  get #active(): boolean {
    const state = this.#connection.state
    return state === 'syncing' || state === 'live'
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#connection.state
  }

  /** The relay URL the current (or next) connection uses; undefined without a relay. */
  get url(): string | undefined {
    return this.#connection.url
  }

  /** Frames sent on all connections (for tests that count re-sends). @internal */
  get framesSent(): number {
    return this.#connection.frames.framesSent
  }

  /** Changes sent in `ops` frames (for tests and benchmarks). @internal */
  get opsChangesSent(): number {
    return this.#outbox.changesSent
  }

  /** What crossed the wire so far. @internal */
  get stats(): SyncStats {
    const c = this.#connection.frames
    return { framesSent: c.framesSent, opsChangesSent: this.#outbox.changesSent, framesReceived: c.framesReceived, bytesReceived: c.bytesReceived, resumes: { ...this.#shapes.resumes }, antiEntropy: { ...this.#shapes.antiEntropy } }
  }

  /** Begins connecting (no-op without a URL; waits for `setOffline(false)` when forced offline). */
  start(): void {
    this.#connection.start()
  }

  /** Stops for good (engine close). */
  stop(): void {
    this.#connection.stop()
  }

  setToken(token: string | undefined): void {
    this.#connection.setToken(token)
  }

  setAuthProvider(provider: () => Promise<string | undefined>): void {
    this.#connection.setAuthProvider(provider)
  }

  setOffline(offline: boolean): void {
    this.#connection.setOffline(offline)
  }

  /** A local write committed: send what this connection has not sent yet (once). */
  outboxChanged(): void {
    this.#outbox.changed()
  }

  /** A shape was subscribed while connected: subscribe it on this connection too. */
  shapeAdded(replica: ShapeReplica): void {
    this.#shapes.added(replica)
  }

  /**
   * Reconciles these shapes again now (their local data changed in a way only the relay can
   * complete, e.g. a refused write was taken back): a fresh subscription on this connection
   * descends from the current roots. Offline, the next connection does it anyway.
   */
  repair(replicas: readonly ShapeReplica[]): void {
    this.#shapes.repair(replicas)
  }

  /** Where `replica` stands on the current session (read by the inspector). */
  shapeProgress(replica: ShapeReplica): ReturnType<ShapeSync['progressOf']> {
    return this.#shapes.progressOf(replica)
  }

  shapeRemoved(replica: ShapeReplica): void {
    this.#shapes.removed(replica)
  }

  /** True when a welcomed session can carry requests and topic subscriptions. */
  get sessionOpen(): boolean {
    return this.#active && this.#connection.socket !== undefined
  }

  /**
   * Sends a one-way coordination message (`topic-sub`, `topic-unsub`) on the current
   * session; false when there is none (the caller re-sends after the next `welcome`).
   */
  sendControl(message: ClientMessage): boolean {
    if (!this.sessionOpen) return false
    this.#connection.send(message)
    return true
  }

  /** Sends a coordination request and resolves with its answer; see `request-channel.ts`. */
  request(build: (id: number) => ClientMessage, timeoutMs: number): Promise<RequestAnswer> {
    return this.#requests.request(build, timeoutMs)
  }

  // ───────────────────────────── session ─────────────────────────────

  async #onWelcome(serverTime: number, resync: boolean, limits: WireLimits | undefined, cursorWithoutRoot: boolean): Promise<void> {
    const connection = this.#connection
    this.#cursorWithoutRoot = cursorWithoutRoot
    const now = this.#options.now()
    // The relay's clock at "now" is about serverTime plus half the round trip.
    this.#host.hlc.offset = serverTime + (now - connection.helloAt) / 2 - now
    if (limits !== undefined) {
      connection.frames.limits = { maxFrameBytes: limits.maxFrameBytes, maxElements: limits.maxElements }
      this.#host.limitsChanged(connection.frames.limits)
    }
    // Pending writes stamped under a wrong clock are re-stamped before anything is reconciled or sent.
    const socket = connection.socket
    await this.#host.clockCorrected?.()
    if (connection.socket !== socket || connection.state !== 'handshaking') return
    connection.dispatch('welcome')
    await this.#shapes.sessionUp(resync)
    // The socket may have gone while shapes were reset: that session is over.
    if (connection.socket !== socket) return
    this.#outbox.sessionUp()
    this.#sessionUp = true
    this.#host.sessionChanged?.(true)
    this.#requests.sessionUp()
    this.#checkSynced()
  }

  #sessionEnded(): void {
    this.#outbox.sessionEnded()
    this.#shapes.sessionEnded()
    this.#requests.failInFlight('socket closed')
    if (this.#sessionUp) {
      this.#sessionUp = false
      this.#host.sessionChanged?.(false)
    }
  }

  /** `syncing` becomes `live` once every shape is synced. */
  #checkSynced(): void {
    if (this.#connection.state !== 'syncing' || !this.#shapes.allSynced) return
    this.#host.synced(this.#options.now() + this.#host.hlc.offset)
    this.#connection.dispatch('synced')
  }

  // ───────────────────────────── inbound ─────────────────────────────

  async #handle(message: ServerMessage, length: number): Promise<void> {
    switch (message.type) {
      case 'welcome':
        return this.#onWelcome(message.serverTime, message.resync, message.limits, message.cursorWithoutRoot === true)
      case 'subscribed':
        return this.#shapes.subscribed(message.sub, message.root, message.resume)
      case 'nodes':
        return this.#shapes.nodes(message.sub, message.nodes, message.more === true)
      case 'changes':
        await this.#shapes.changes(message)
        // Paced frames (a slice) are paid back once applied, so the relay sends the next.
        if (message.paced === true) this.#connection.send({ type: 'credit', bytes: Math.max(1, length) })
        return
      case 'push':
        return this.#shapes.push(message)
      case 'synced':
        return this.#shapes.synced(message)
      case 'resync':
        return this.#shapes.resync(message.sub)
      case 'ack':
        return this.#outbox.ack(message.id, message.results)
      case 'error':
        return this.#onError(message.error, message.ref, message.sub)
      case 'topic-ack':
      case 'lock-granted':
      case 'lock-released':
      case 'lock-status':
      case 'invoke-result':
        this.#requests.answer(message)
        return
      case 'topic-msg':
      case 'lock-lost':
        this.#host.coordinationMessage?.(message)
        return
      case 'pong': {
        const now = this.#options.now()
        this.#host.hlc.offset = message.serverTime + (now - message.clientTime) / 2 - now
        // While live, fan-out has kept this replica current: it is synced as of now.
        if (this.#connection.state === 'live') this.#host.synced(message.serverTime)
        return
      }
    }
  }

  async #onError(error: SerializedError, ref: number | undefined, sub: number | undefined): Promise<void> {
    if (ref !== undefined) {
      if (this.#requests.refused(ref, error)) return
      await this.#outbox.refused(ref, error)
      this.#host.connectionChanged(error)
      return
    }
    if (sub !== undefined) return this.#shapes.refused(sub, error)
    const topic = error.details?.['topic']
    if (typeof topic === 'string' && this.#host.topicRefused?.(topic, error) === true) return
    if (error.code === 'TOKEN_EXPIRED' || error.code === 'UNAUTHENTICATED') this.#connection.dispatch('token-expired', error)
    else this.#connection.dispatch('error', error)
  }
}
