/**
 * A WebSocket as a {@link SessionTransport}: sends with a bound on what may wait unsent,
 * pings for the heartbeat, pauses reading for flow control, and closes so that a socket
 * is always released — a peer that never completes the close handshake is destroyed after
 * {@link CLOSE_GRACE_MS}, and one that missed its heartbeats at once (it cannot hear a
 * close frame anyway).
 */
import type { Logger } from 'pino'
import type { WebSocket } from 'ws'
import { CLOSE } from './connection-log'
import type { Session, SessionTransport } from './session/session'

/** How long a closing socket may take to complete the close handshake before it is destroyed. */
export const CLOSE_GRACE_MS = 5_000

/** Options of {@link attachWebSocket}. */
export interface WebSocketSessionOptions {
  /** Bytes that may wait unsent before the session is closed as a consumer too slow (4009). */
  readonly maxBufferedBytes: number
  /** The frame limit, named when `ws` closes a socket for an oversized frame. */
  readonly maxFrameBytes: number
  /** The peer's address, for logs. */
  readonly remote: string | undefined
  /** Creates the session for a transport (the relay registers it). */
  readonly newSession: (transport: SessionTransport) => Session
  readonly logger: Logger
}

/** Wires an accepted WebSocket to a new session; returns the session. */
export function attachWebSocket(socket: WebSocket, options: WebSocketSessionOptions): Session {
  const { maxBufferedBytes } = options
  let session: Session | undefined
  const transport: SessionTransport = {
    kind: 'ws',
    remote: options.remote,
    send(frame) {
      if (socket.readyState !== socket.OPEN) return
      if (socket.bufferedAmount > maxBufferedBytes) {
        // What waits unsent is the relay's memory: a peer that does not read may not hold more.
        session?.close(CLOSE.SLOW_CONSUMER, `consumer too slow: more than ${maxBufferedBytes} bytes waiting to be sent (limits.maxBufferedBytesPerConnection)`)
        return
      }
      socket.send(frame)
    },
    close(code, reason) {
      if (code === CLOSE.HEARTBEAT_TIMEOUT) {
        socket.terminate()
        return
      }
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason)
      const timer = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS)
      timer.unref()
      socket.once('close', () => clearTimeout(timer))
    },
    bufferedBytes: () => socket.bufferedAmount,
    ping() {
      if (socket.readyState === socket.OPEN) socket.ping()
    },
    pause() {
      socket.pause()
    },
    resume() {
      socket.resume()
    },
  }
  const created = options.newSession(transport)
  session = created
  socket.on('pong', () => created.heard())
  socket.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
    created.receive(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length))
  })
  socket.on('close', (code: number, reason: Buffer) => {
    const cause = { code, reason: reason.toString('utf8') }
    // Frames that arrived before the close are handled first: a compressed one is inflated on
    // zlib's thread pool and delivered in the same tick as the close (a tab's last writes, a leave).
    const dispose = (): void => created.dispose(cause)
    void created.idle().then(dispose, dispose)
  })
  socket.on('error', (error: Error & { code?: string }) => {
    // ws closes an oversized frame's socket itself (1009) and reports 1006 locally: keep the real cause.
    if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') created.close(CLOSE.TOO_BIG, `frame larger than limits.maxFrameBytes (${options.maxFrameBytes} bytes)`)
    else options.logger.debug({ err: error, session: created.id }, 'websocket error')
  })
  return created
}
