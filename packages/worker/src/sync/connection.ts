/**
 * One relay connection at a time: the socket, the state machine of `connection-state.ts`
 * and the effects of entering each state, the token the hello carries, and handing decoded
 * frames on in arrival order. The URL round is `relay-urls.ts`, framing `frame-codec.ts`,
 * the liveness timer `watchdog.ts`.
 *
 *   state        entering it does                                     leaves on
 *   ───────────  ───────────────────────────────────────────────────  ──────────────────────────
 *   offline      close the socket                                     start / go-online
 *   connecting   wait for a token if one is required, open a socket   socket-open, close, error
 *                to urls[i]
 *   handshaking  (socket open) send hello                             welcome (→ syncing)
 *   syncing      the session layers subscribe and send the outbox     synced (→ live)
 *   live         reset backoff and the URL round                      close, error, go-offline
 *   backing-off  close the socket; i = i+1 (mod n); wait 0 ms while    backoff-elapsed, go-online
 *                the round has URLs not yet tried, else the backoff
 *   auth-expired close the socket, ask the auth provider               token-refreshed, error
 *
 *        ┌──────── next URL at once (round not done) ────────┐
 *        ▼                                                   │
 *   connecting ─▶ handshaking ─▶ syncing ─▶ live ──close──▶ backing-off
 *        ▲                                                   │
 *        └──── after backoffDelay(attempt) (round done) ─────┘
 *
 * A round is one failed or lost connection per URL in a row (see `relay-urls.ts`).
 */
import { InternalError, PROTOCOL_VERSIONS, serializeError, type ClientMessage, type SerializedError, type ServerMessage } from '@outpost/core'
import type { ConnectionState } from '../engine-api'
import { backoffDelay, transition, type ConnectionEvent } from './connection-state'
import { FrameCodec } from './frame-codec'
import { RelayUrls } from './relay-urls'
import type { SyncClientOptions } from './sync-client'
import { startWatchdog } from './watchdog'
import { networkEventsOr, type WebSocketConstructor, type WebSocketLike } from './web-socket'

/** What the connection needs from the session layers above it. */
export interface ConnectionHost {
  /** This replica's id and when it last completed a sync, for `hello`. */
  hello(): { readonly replicaId: string | undefined; readonly lastSyncAt: number | null; readonly schemas?: Readonly<Record<string, number>> | undefined }
  /** A decoded frame; frames are handled one after another (each waits for the previous one's work). */
  message(message: ServerMessage, length: number): Promise<void>
  /** The socket is gone (closed, failed or torn down): per-session state goes with it. */
  sessionEnded(): void
  /** True when a reply the relay owes has made no progress for `replyMs`: the session restarts. */
  stalled(now: number, replyMs: number): boolean
  /** True while a welcomed session is up (the watchdog pings only then). */
  readonly sessionUp: boolean
  /** The watchdog's tick while a session is up (live anti-entropy; see `shape-sync.ts`). */
  tick(now: number): void
  /** The state changed, or an error is worth reporting. */
  changed(error?: SerializedError): void
  /** The connection entered a state in which requests cannot wait for a session. */
  unreachable(state: ConnectionState): void
}

/** Bytes of paced frames (initial slices) this client takes unprocessed: the relay waits for `credit` beyond it. */
export const CLIENT_WINDOW_BYTES = 4 * 1024 * 1024
/** Close code the relay uses when the token expired. */
const CLOSE_TOKEN_EXPIRED = 4003

/** Closing a socket that never opened may throw; it is gone either way, so there is nothing to do. */
function onCloseError(error: unknown): void {
  void error
}

/** Errors a socket reports after we tore it down carry nothing we act on: the connection is already gone. */
function ignoreErrorAfterTeardown(): void {}

/** One relay connection at a time; see the module comment. */
export class Connection {
  readonly #host: ConnectionHost
  readonly #options: SyncClientOptions
  #state: ConnectionState = 'offline'
  #socket: WebSocketLike | undefined
  #token: string | undefined
  #authProvider: (() => Promise<string | undefined>) | undefined
  #forcedOffline = false
  /** Backoff rounds so far (reset once live): the exponent of the next backoff delay. */
  #attempt = 0
  /** The relay URLs, in failover order (none: local only). */
  readonly #urls: RelayUrls
  #timer: ReturnType<typeof setTimeout> | undefined
  /** When `hello` went out (ms), for the clock offset measured at `welcome`. */
  #helloAt = 0
  /** When the socket last delivered a frame (ms), for the dead-connection check. */
  #lastFrameAt = 0
  #watchdog: ReturnType<typeof setInterval> | undefined
  /** Bumped per connection attempt, so an attempt that awaited a token knows it is still current. */
  #attemptId = 0
  /** Messages are handled in arrival order: each waits for the previous one's store work. */
  #chain: Promise<void> = Promise.resolve()
  /** Framing: the relay's limits (`welcome` sets them), the wire version, frame counts. */
  readonly frames = new FrameCodec()

  constructor(host: ConnectionHost, options: SyncClientOptions) {
    this.#host = host
    this.#options = options
    this.#token = options.token
    this.#urls = new RelayUrls(options.url)
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state
  }

  /** True when a relay URL is configured. */
  get hasRelay(): boolean {
    return this.#urls.any
  }

  /** The relay URL the current (or next) connection uses; undefined without a relay. */
  get url(): string | undefined {
    return this.#urls.current
  }

  /** When `hello` went out on this connection (ms). */
  get helloAt(): number {
    return this.#helloAt
  }

  /** The socket in use (an identity token: after an await, compare to see the connection is still the same). */
  get socket(): WebSocketLike | undefined {
    return this.#socket
  }

  /** Begins connecting (no-op without a URL; waits for `setOffline(false)` when forced offline). */
  start(): void {
    if (!this.#urls.any) return
    networkEventsOr(this.#options.networkEvents)?.addEventListener('online', this.#onNetworkOnline)
    if (!this.#forcedOffline) this.dispatch('start')
  }

  /** Stops for good (engine close). */
  stop(): void {
    this.#forcedOffline = true
    networkEventsOr(this.#options.networkEvents)?.removeEventListener('online', this.#onNetworkOnline)
    this.dispatch('go-offline')
  }

  setToken(token: string | undefined): void {
    this.#token = token
    if (this.#state === 'auth-expired') this.dispatch('token-refreshed')
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
    if (!this.#urls.any) return
    this.dispatch(offline ? 'go-offline' : 'go-online')
  }

  /** The network came back: a connection waiting out its backoff retries now, from a fresh backoff. */
  readonly #onNetworkOnline = (): void => {
    if (this.#state !== 'backing-off') return
    this.#attempt = 0
    this.#urls.newRound()
    this.dispatch('backoff-elapsed')
  }

  // ───────────────────────────── state machine effects ─────────────────────────────

  /** Feeds an event to the state machine and performs the effects of the state it leads to. */
  dispatch(event: ConnectionEvent, error?: SerializedError): void {
    const from = this.#state
    const to = transition(from, event)
    if (to === from) return
    this.#state = to
    this.#exit(from)
    this.#enter(to)
    if (to === 'offline' || to === 'backing-off' || to === 'auth-expired') this.#host.unreachable(to)
    this.#host.changed(error)
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
        const delay = this.#urls.failover() ? 0 : backoffDelay(this.#attempt++, this.#options.random, this.#options.backoff)
        this.#timer = setTimeout(() => {
          this.#timer = undefined
          this.dispatch('backoff-elapsed')
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
        this.#urls.newRound()
        return
      default:
        return
    }
  }

  async #refreshToken(): Promise<void> {
    const provider = this.#authProvider
    if (provider === undefined) return // waits for setToken / setAuthProvider
    try {
      const token = await provider()
      if (this.#state !== 'auth-expired') return
      this.#token = token
      this.dispatch('token-refreshed')
    } catch (error) {
      this.dispatch('error', serializeError(error))
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
          if (this.#state === 'connecting' && this.#attemptId === attempt) this.dispatch('error', serializeError(error))
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
      this.dispatch('error', serializeError(new InternalError('no WebSocket implementation available')))
      return
    }
    let socket: WebSocketLike
    try {
      socket = new Ctor(url)
    } catch (error) {
      queueMicrotask(() => this.dispatch('error', serializeError(error)))
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    this.#lastFrameAt = this.#options.now()
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = startWatchdog(this.#options, this, this.#host, () => (this.#socket === undefined ? undefined : this.#lastFrameAt))
    socket.onopen = () => {
      if (this.#socket !== socket) return
      this.#lastFrameAt = this.#options.now()
      this.dispatch('socket-open')
      this.#hello()
    }
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return
      this.#onFrame(event.data)
    }
    socket.onclose = (event) => {
      if (this.#socket !== socket) return
      this.#socket = undefined
      if (event.code === CLOSE_TOKEN_EXPIRED) this.dispatch('token-expired')
      else this.dispatch('socket-closed')
    }
    socket.onerror = () => {
      // The close event follows and carries the outcome.
    }
  }

  #teardown(): void {
    const socket = this.#socket
    this.#socket = undefined
    this.frames.reset()
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
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = undefined
    this.#host.sessionEnded()
  }

  /**
   * Sends one message. Throws `ValueTooLargeError` (and sends nothing) when its frame
   * exceeds the relay's limit (see {@link FrameCodec.encode}). Without an open socket it
   * sends nothing (the next session sends what is still owed).
   */
  send(message: ClientMessage): void {
    const socket = this.#socket
    if (socket === undefined || socket.readyState !== 1) return
    socket.send(this.frames.encode(message))
    this.frames.framesSent++
  }

  #hello(): void {
    this.#helloAt = this.#options.now()
    const { replicaId, lastSyncAt, schemas } = this.#host.hello()
    this.send({
      type: 'hello',
      versions: [...PROTOCOL_VERSIONS],
      ...(this.#token === undefined ? {} : { token: this.#token }),
      replicaId: replicaId as never,
      clientTime: this.#helloAt,
      ...(lastSyncAt === null ? {} : { lastSyncAt }),
      window: CLIENT_WINDOW_BYTES,
      ...(schemas === undefined ? {} : { schemas: { ...schemas } }),
    })
  }

  // ───────────────────────────── inbound ─────────────────────────────

  #onFrame(data: unknown): void {
    this.#lastFrameAt = this.#options.now()
    let message: ServerMessage
    let length: number
    try {
      ;({ message, length } = this.frames.decode(data))
    } catch (error) {
      // A frame we cannot read: the session is out of step, start a fresh one.
      this.dispatch('error', serializeError(error))
      return
    }
    const run = this.#chain.then(() => this.#host.message(message, length))
    this.#chain = run.catch(() => undefined)
    void run.catch((error: unknown) => this.dispatch('error', serializeError(error)))
  }
}
