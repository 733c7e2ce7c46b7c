/**
 * The HTTP sync fallback, for clients that cannot hold a WebSocket: `POST /sync` carries one
 * client frame (the first, a hello, opens a session addressed by `x-outpost-session`), and
 * `GET /events?session=` streams the session's server frames as server-sent events. The
 * sessions themselves are the same {@link Session}s the WebSocket path uses (see `relay.ts`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RelayConfig } from './config'
import { HttpTransport } from './http-transport'
import type { Session, SessionTransport } from './session/session'

/** An open HTTP fallback session and its transport. */
export interface HttpSessionEntry {
  readonly session: Session
  readonly transport: HttpTransport
}

/** What the fallback needs from the relay. */
export interface HttpSyncDeps {
  readonly config: RelayConfig
  /** True while the relay accepts new sessions. */
  readonly accepting: () => boolean
  /** Open fallback sessions by id (the relay forgets a session here when it closes). */
  readonly httpSessions: Map<string, HttpSessionEntry>
  readonly newSession: (transport: SessionTransport) => Session
}

/** Reads a request body, or resolves `undefined` (and drops the request) past `limit` bytes. */
export const readBody = (req: IncomingMessage, limit: number): Promise<Buffer | undefined> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        resolve(undefined)
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })

/** The handlers of `POST /sync` and `GET /events`. */
export function httpSyncHandlers(deps: HttpSyncDeps): {
  handleSync(req: IncomingMessage, res: ServerResponse): Promise<void>
  handleEvents(url: URL, res: ServerResponse): void
} {
  const { config, httpSessions, newSession } = deps
  const handleSync = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, config.limits.maxFrameBytes)
    if (body === undefined) {
      res.writeHead(413).end('frame too large')
      return
    }
    const frame = new Uint8Array(body.buffer, body.byteOffset, body.length)
    const header = req.headers['x-outpost-session']
    if (typeof header === 'string' && header !== '') {
      const entry = httpSessions.get(header)
      if (entry === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown or expired session; send hello again')
        return
      }
      if (entry.session.overBudget) {
        // Flow control for the fallback: the client waits and retries instead of queueing in the relay's memory.
        res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('too much work queued on this session; wait for acks, then retry')
        return
      }
      entry.session.receive(frame)
      await entry.session.idle()
      res.writeHead(202).end()
      return
    }
    if (!deps.accepting()) {
      res.writeHead(503).end('relay is not accepting sessions')
      return
    }
    const transport = new HttpTransport(config.limits.maxBufferedBytesPerConnection, req.socket.remoteAddress)
    let reply: Uint8Array | undefined
    transport.capture = (f) => {
      reply = f
    }
    const session = newSession(transport)
    transport.onClose = () => session.dispose()
    session.receive(frame)
    await session.idle()
    transport.capture = undefined
    const headers: Record<string, string> = { 'content-type': 'application/msgpack' }
    if (session.state === 'open') {
      httpSessions.set(session.id, { session, transport })
      headers['x-outpost-session'] = session.id
    }
    res.writeHead(200, headers).end(reply === undefined ? Buffer.alloc(0) : Buffer.from(reply))
  }

  const handleEvents = (url: URL, res: ServerResponse): void => {
    const id = url.searchParams.get('session') ?? ''
    const entry = httpSessions.get(id)
    if (entry === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown or expired session; send hello again')
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    res.write(': connected\n\n')
    entry.transport.attach(res)
    entry.session.heard()
    res.on('close', () => {
      if (entry.transport.stream === res) entry.transport.stream = undefined
    })
  }

  return { handleSync, handleEvents }
}
