/**
 * The HTTP fallback as a {@link SessionTransport}: the first frame answers the hello POST,
 * the rest go to the session's event stream (`GET /events`, server-sent events), or wait
 * for it — bounded in bytes like a WebSocket's send buffer. The heartbeat pings an
 * attached stream with a comment line (it keeps proxies from cutting an idle stream); the
 * client proves it is alive by POSTing (a `ping` will do) at least once per heartbeat
 * interval.
 */
import type { ServerResponse } from 'node:http'
import { CLOSE } from './connection-log'
import type { SessionTransport } from './session/session'

/** See the module comment. */
export class HttpTransport implements SessionTransport {
  readonly kind = 'http'
  /** The peer's address, for logs. */
  readonly remote: string | undefined
  /** Set while the hello POST waits for its answer. */
  capture: ((frame: Uint8Array) => void) | undefined
  stream: ServerResponse | undefined
  readonly queue: Uint8Array[] = []
  #queuedBytes = 0
  closed: { code: number; reason: string } | undefined
  onClose: (() => void) | undefined
  readonly #maxBufferedBytes: number

  constructor(maxBufferedBytes: number, remote: string | undefined) {
    this.#maxBufferedBytes = maxBufferedBytes
    this.remote = remote
  }

  send(frame: Uint8Array): void {
    if (this.closed !== undefined) return
    if (this.capture !== undefined) {
      const capture = this.capture
      this.capture = undefined
      capture(frame)
      return
    }
    if (this.stream !== undefined) {
      if (this.stream.writableLength > this.#maxBufferedBytes) {
        this.close(CLOSE.SLOW_CONSUMER, `consumer too slow: more than ${this.#maxBufferedBytes} bytes waiting on the event stream (limits.maxBufferedBytesPerConnection)`)
        return
      }
      this.stream.write(`data: ${Buffer.from(frame).toString('base64')}\n\n`)
      return
    }
    if (this.#queuedBytes + frame.length > this.#maxBufferedBytes) {
      this.close(CLOSE.SLOW_CONSUMER, `event stream not attached and more than ${this.#maxBufferedBytes} bytes undelivered (limits.maxBufferedBytesPerConnection)`)
      return
    }
    this.#queuedBytes += frame.length
    this.queue.push(frame)
  }

  bufferedBytes(): number {
    return this.stream !== undefined ? this.stream.writableLength : this.#queuedBytes
  }

  /** Makes `stream` the session's event stream and flushes what waited for one. */
  attach(stream: ServerResponse): void {
    this.stream?.end()
    this.stream = stream
    for (const frame of this.queue.splice(0)) stream.write(`data: ${Buffer.from(frame).toString('base64')}\n\n`)
    this.#queuedBytes = 0
    if (this.closed !== undefined) this.#endStream()
  }

  ping(): void {
    this.stream?.write(': ping\n\n')
  }

  close(code: number, reason: string): void {
    if (this.closed !== undefined) return
    this.closed = { code, reason }
    this.queue.length = 0
    this.#queuedBytes = 0
    this.#endStream()
    this.onClose?.()
  }

  #endStream(): void {
    if (this.stream === undefined || this.closed === undefined) return
    this.stream.write(`event: close\ndata: ${JSON.stringify(this.closed)}\n\n`)
    this.stream.end()
    this.stream = undefined
  }
}
