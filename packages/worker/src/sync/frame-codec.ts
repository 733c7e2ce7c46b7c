/**
 * Framing for one relay connection at a time: every frame out is checked against the
 * relay's frame limit before it is sent, every frame in is decoded under that limit, both
 * in the wire version the relay chose in `welcome` (1 until then). Counts what crossed, for
 * the inspector and the structural-cost tests.
 */
import { DEFAULT_WIRE_LIMITS, ValueTooLargeError, decodeServerMessage, encodeMessage, type ClientMessage, type ServerMessage, type WireLimits } from '@outpost/core'

/** Encodes and decodes the frames of the current connection. */
export class FrameCodec {
  /** The relay's frame limits (from `welcome`; the defaults before). */
  limits: WireLimits = DEFAULT_WIRE_LIMITS
  /** The wire version the relay chose in `welcome` (of those hello offered); 1 before it. */
  #version = 1
  /** Frames sent on all connections. @internal */
  framesSent = 0
  /** Frames and bytes received on all connections. @internal */
  framesReceived = 0
  bytesReceived = 0

  /** A new connection speaks version 1 until its `welcome`. */
  reset(): void {
    this.#version = 1
  }

  /**
   * The frame of `message`. Throws {@link ValueTooLargeError} when it exceeds the relay's
   * limit: a frame the relay would close the connection for is never sent, so nothing can
   * make the client reconnect in a loop.
   */
  encode(message: ClientMessage): Uint8Array {
    const frame = encodeMessage(message, this.#version)
    if (frame.length > this.limits.maxFrameBytes) {
      throw new ValueTooLargeError(`This ${message.type} message encodes to ${frame.length} bytes, over the relay's frame limit of ${this.limits.maxFrameBytes} bytes; make it smaller`, {
        bytes: frame.length,
        maxFrameBytes: this.limits.maxFrameBytes,
        type: message.type,
      })
    }
    return frame
  }

  /** The message in a frame that arrived, and the frame's length; throws when it cannot be read. */
  decode(data: unknown): { message: ServerMessage; length: number } {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array)
    this.framesReceived++
    this.bytesReceived += bytes.length
    const message = decodeServerMessage(bytes, this.limits, this.#version)
    // Set on arrival, not when the handler chain reaches it: the frames behind it are in this version.
    if (message.type === 'welcome') this.#version = message.version
    return { message, length: bytes.length }
  }
}
