/**
 * A session's outgoing side: encodes server messages in the wire version the hello
 * negotiated, counts the bytes sent (and the errors) in the relay's metrics, and hands the
 * frames to the transport. Nothing goes out once the session is closed.
 */
import { encodeMessage, encodeMessageCounted, type CountedFrame, type ServerMessage } from '@outpost/core'
import type { RelayContext } from '../relay-context'
import type { SessionTransport } from './transport'

/** Encoding and sending for one session; see the module comment. */
export class Outbox {
  /** The wire version `hello` negotiated: frames are read and written in it (1 until then; a v2 reader reads v1 too). */
  version = 1
  readonly #context: RelayContext
  readonly #transport: SessionTransport
  readonly #closed: () => boolean

  constructor(context: RelayContext, transport: SessionTransport, closed: () => boolean) {
    this.#context = context
    this.#transport = transport
    this.#closed = closed
  }

  /** Sends a frame already encoded (one encoding fanned out to many sessions, a farewell). */
  frame(frame: Uint8Array): void {
    if (this.#closed()) return
    this.#context.metrics.bytesOut.inc(frame.length)
    this.#transport.send(frame)
  }

  /** Encodes and sends a server message (nothing once the session closed). */
  send(message: ServerMessage): void {
    if (this.#closed()) return
    let frame: Uint8Array
    try {
      frame = encodeMessage(message, this.version)
    } catch (error) {
      this.#context.logger.error({ err: error, type: message.type }, 'cannot encode a server message')
      return
    }
    this.#context.metrics.bytesOut.inc(frame.length)
    if (message.type === 'error') this.#context.metrics.errors.inc({ code: message.error.code })
    this.#transport.send(frame)
  }

  /** Encodes a message in the session's wire version without sending it (undefined, logged, when it cannot be encoded). */
  encode(message: ServerMessage): CountedFrame | undefined {
    try {
      return encodeMessageCounted(message, this.version)
    } catch (error) {
      this.#context.logger.error({ err: error, type: message.type }, 'cannot encode a server message')
      return undefined
    }
  }

  /** Sends a frame {@link encode} made; returns its length (0 when nothing was sent). */
  sendEncoded(frame: Uint8Array): number {
    if (this.#closed()) return 0
    this.frame(frame)
    return frame.length
  }

  /** Sends a message and returns its frame's length (0 when nothing was sent). */
  sendMeasured(message: ServerMessage): number {
    if (this.#closed()) return 0
    let frame: Uint8Array
    try {
      frame = encodeMessage(message, this.version)
    } catch (error) {
      this.#context.logger.error({ err: error, type: message.type }, 'cannot encode a server message')
      return 0
    }
    this.#context.metrics.bytesOut.inc(frame.length)
    this.#transport.send(frame)
    return frame.length
  }
}
