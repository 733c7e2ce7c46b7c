/**
 * What a session sees of its connection (WebSocket, `ws-transport.ts`, or the HTTP fallback,
 * `http-transport.ts`), the session's states, and the close-reason rule every transport shares.
 *
 * Close codes (`CLOSE` in connection-log.ts): 4000 protocol version, 4001 unauthenticated, 4002 hello
 * expected, 4003 token expired, 4004 replica bound to another user, 4005 no hello within
 * `limits.helloTimeoutMs`, 4006 heartbeat timeout (silent for two `limits.heartbeatMs`),
 * 4008 limits (rate ignored, connections per subject), 4009 consumer too slow (more than
 * `limits.maxBufferedBytesPerConnection` unsent), 1008 repeated bad frames, 1009 frame too
 * big, 1011 internal, 1012 relay restarting. Every close passes a reason string that says
 * which limit or rule it was. The full table, with how each close is logged and counted, is
 * in connection-log.ts; every session reports its open and its end, with the cause, to the
 * relay's `ConnectionLog`.
 */

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

/** Session states; see the diagram in session.ts. */
export type SessionState = 'awaiting-hello' | 'open' | 'closed'

/** Cuts a close reason to what a WebSocket close frame carries. */
export function truncateReason(reason: string): string {
  // A WebSocket close reason is at most 123 bytes of UTF-8.
  let out = reason
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1)
  return out
}
