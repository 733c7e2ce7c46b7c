/**
 * The platform a relay connection runs on: the WebSocket (the browser's, or the `ws`
 * package's in Node) and the global scope's `online` event, both injectable.
 */

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

/** The part of `EventTarget` the sync client uses to hear that the network is back. */
export interface NetworkEvents {
  addEventListener(type: 'online', listener: () => void): void
  removeEventListener(type: 'online', listener: () => void): void
}

/** `given`, else the global scope when it has event listeners (a window or a worker), else none. */
export function networkEventsOr(given: NetworkEvents | undefined): NetworkEvents | undefined {
  if (given !== undefined) return given
  const global = globalThis as Partial<NetworkEvents>
  return typeof global.addEventListener === 'function' && typeof global.removeEventListener === 'function' ? (global as NetworkEvents) : undefined
}
