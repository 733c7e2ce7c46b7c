/**
 * A device's network link to the relay: a TCP pass-through on a free 127.0.0.1 port that
 * the spec can cut and restore.
 *
 * Why it exists: `context.setOffline(true)` cuts a page's requests but, in Chromium, not
 * the WebSocket of a SharedWorker (checked: the engine stayed `live` and the relay kept its
 * connection 4 s after setOffline). A real device losing its network loses every socket,
 * so each device dials the relay through its own link, and going offline does both:
 * `context.setOffline` (page loads now come from the service worker's cache) and
 * {@link NetworkLink.cut} (the engine's socket drops).
 *
 * While cut, open connections are destroyed and new ones are accepted but left hanging,
 * as on a network that swallows packets; when restored, the hanging ones are connected
 * through, so the engine's pending attempt completes at once instead of after a backoff
 * that grew while the device was offline. The relay itself is real and untouched.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

/** See the module comment. */
export class NetworkLink {
  readonly #server: Server
  readonly #relayPort: () => number
  readonly #open = new Set<Socket>()
  #held: { socket: Socket; buffered: Buffer[] }[] = []
  #cut = false

  private constructor(server: Server, relayPort: () => number) {
    this.#server = server
    this.#relayPort = relayPort
  }

  /** Opens a link to the relay whose port `relayPort()` returns (read per connection: a restarted relay keeps its port, but the link does not assume so). */
  static async open(relayPort: () => number): Promise<NetworkLink> {
    const server = createServer()
    const link = new NetworkLink(server, relayPort)
    server.on('connection', (socket) => link.#accept(socket))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    return link
  }

  /** The port devices dial instead of the relay's. */
  get port(): number {
    const address = this.#server.address()
    if (address === null || typeof address === 'string') throw new Error('the network link is not listening')
    return address.port
  }

  /** True while the link is cut. */
  get isCut(): boolean {
    return this.#cut
  }

  /** Drops every open connection and leaves new ones hanging. */
  cut(): void {
    this.#cut = true
    for (const socket of this.#open) socket.destroy()
    this.#open.clear()
  }

  /** Restores the link and connects the connections that were left hanging. */
  restore(): void {
    this.#cut = false
    const held = this.#held
    this.#held = []
    for (const { socket, buffered } of held) {
      if (!socket.destroyed) this.#forward(socket, buffered)
    }
  }

  /** Stops listening and drops everything. */
  async close(): Promise<void> {
    for (const socket of this.#open) socket.destroy()
    for (const { socket } of this.#held) socket.destroy()
    this.#open.clear()
    this.#held = []
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #accept(socket: Socket): void {
    socket.on('error', ignoreSocketError)
    if (!this.#cut) {
      this.#forward(socket, [])
      return
    }
    const entry = { socket, buffered: [] as Buffer[] }
    socket.on('data', (chunk: Buffer) => entry.buffered.push(chunk))
    socket.on('close', () => {
      this.#held = this.#held.filter((h) => h !== entry)
    })
    this.#held.push(entry)
  }

  #forward(socket: Socket, buffered: Buffer[]): void {
    socket.removeAllListeners('data')
    socket.pause()
    const upstream = connect(this.#relayPort(), '127.0.0.1')
    upstream.on('error', ignoreSocketError)
    this.#open.add(socket)
    this.#open.add(upstream)
    const drop = (): void => {
      this.#open.delete(socket)
      this.#open.delete(upstream)
      socket.destroy()
      upstream.destroy()
    }
    socket.on('close', drop)
    upstream.on('close', drop)
    upstream.on('connect', () => {
      for (const chunk of buffered) upstream.write(chunk)
      socket.pipe(upstream)
      upstream.pipe(socket)
      socket.resume()
    })
  }
}

/** A reset or refused connection on either side just ends that connection (the other side is destroyed with it). */
function ignoreSocketError(_error: Error): void {}
