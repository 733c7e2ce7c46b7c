/**
 * A TCP proxy on 127.0.0.1 that counts the bytes crossing it in each direction. Every
 * system's client connects to its server through one, so "bytes on the wire" is measured
 * the same way for all (WebSocket framing included, TCP/IP headers excluded).
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

/** Bytes seen since the last reset. */
export interface ByteCount {
  /** Client → server. */
  readonly up: number
  /** Server → client. */
  readonly down: number
}

/** A running counting proxy. */
export interface CountingProxy {
  readonly port: number
  /** `ws://127.0.0.1:<port>` plus `path`. */
  url(path?: string): string
  /** Bytes since the last reset. */
  bytes(): ByteCount
  /** Zeroes the counters. */
  reset(): void
  /** Closes the listener and every proxied connection. */
  close(): Promise<void>
}

/** Starts a proxy to `127.0.0.1:targetPort` on a free port. */
export async function startCountingProxy(targetPort: number): Promise<CountingProxy> {
  let up = 0
  let down = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    sockets.add(client)
    sockets.add(upstream)
    client.on('data', (chunk: Buffer) => {
      up += chunk.length
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length
      client.write(chunk)
    })
    const end = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', end)
    upstream.on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('counting proxy: no TCP address')
  const port = address.port
  return {
    port,
    url: (path = '') => `ws://127.0.0.1:${port}${path}`,
    bytes: () => ({ up, down }),
    reset() {
      up = 0
      down = 0
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
