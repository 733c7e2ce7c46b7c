/**
 * A TCP proxy that can cut the line: what a bus test uses to take one relay's connection
 * to Postgres or Redis away (every open socket reset, new ones refused) and give it back,
 * with the real server and the real client library on either side.
 */
import { createServer, connect, type Socket } from 'node:net'

/** A running proxy to one server. */
export interface TcpProxy {
  /** The port clients connect to (127.0.0.1). */
  readonly port: number
  /** Resets every open connection and refuses new ones until {@link restore}. */
  cut(): void
  /** Accepts connections again. */
  restore(): void
  /** Holds back what the server sends (connections stay open), as a stalled network or a slow reader would. */
  pause(): void
  /** Lets what was held back through. */
  resume(): void
  /** Stops the proxy and its connections. */
  close(): Promise<void>
}

/** Starts a proxy on 127.0.0.1 (a free port) to `host:port`. */
export async function startTcpProxy(port: number, host = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>()
  let isCut = false
  const server = createServer((client) => {
    if (isCut) {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(port, host)
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    const end = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port')
  const resetAll = (): void => {
    for (const [client, upstream] of [...pairs]) {
      client.resetAndDestroy()
      upstream.destroy()
    }
    pairs.clear()
  }
  return {
    port: address.port,
    cut: () => {
      isCut = true
      resetAll()
    },
    restore: () => {
      isCut = false
    },
    pause: () => {
      for (const [client, upstream] of pairs) {
        upstream.unpipe(client)
        upstream.pause()
      }
    },
    resume: () => {
      for (const [client, upstream] of pairs) {
        upstream.pipe(client)
        upstream.resume()
      }
    },
    close: async () => {
      resetAll()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
