/**
 * The HTTP side of the relay's one port: health, readiness (503 while draining), Prometheus
 * metrics, and the fallback transport (`POST /sync` + `GET /events`) syncing a write both
 * ways with a WebSocket client.
 */
import { request } from 'node:http'
import { PROTOCOL_VERSIONS, decode, decodeServerMessage, encodeMessage, type ClientMessage, type ReplicaId, type ServerMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'
import { LocalShape } from './helpers/replica'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function post(url: string, message: ClientMessage, session?: string, version = 1): Promise<{ status: number; session: string | undefined; reply: ServerMessage | undefined }> {
  const response = await fetch(`${url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/msgpack', ...(session === undefined ? {} : { 'x-outpost-session': session }) },
    body: encodeMessage(message, version),
  })
  const body = new Uint8Array(await response.arrayBuffer())
  return { status: response.status, session: response.headers.get('x-outpost-session') ?? undefined, reply: response.status === 200 && body.length > 0 ? decodeServerMessage(body) : undefined }
}

/** Opens the event stream and collects decoded server messages (and each frame's data as sent, in `raw`). */
function events(url: string, session: string): { messages: ServerMessage[]; raw: Record<string, unknown>[]; waitFor: (p: (m: ServerMessage) => boolean) => Promise<ServerMessage>; close: () => void } {
  const messages: ServerMessage[] = []
  const raw: Record<string, unknown>[] = []
  const wakers: (() => void)[] = []
  let buffer = ''
  const req = request(`${url}/events?session=${session}`, (res) => {
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => {
      buffer += chunk
      let end: number
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const event = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const data = event.split('\n').find((line) => line.startsWith('data: '))
        if (data !== undefined && !event.startsWith('event:')) {
          const frame = Buffer.from(data.slice(6), 'base64')
          messages.push(decodeServerMessage(frame))
          raw.push(decode(frame) as Record<string, unknown>)
        }
        for (const wake of wakers.splice(0)) wake()
      }
    })
  })
  req.on('error', () => undefined)
  req.end()
  return {
    messages,
    raw,
    close: () => req.destroy(),
    waitFor: async (p) => {
      const deadline = Date.now() + 10_000
      for (;;) {
        const found = messages.find(p)
        if (found !== undefined) return found
        if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(messages).slice(0, 400)}`)
        await new Promise<void>((resolve) => {
          wakers.push(resolve)
          setTimeout(resolve, 200)
        })
      }
    },
  }
}

describe('http endpoints', () => {
  it('serves healthz, readyz and Prometheus metrics, and reports 503 while draining', async () => {
    const { relay, stop } = await startRelay()
    cleanups.push(stop)
    const { client } = await TestClient.connect(relay.url)
    await client.ops([update(client.clock, 'm', 'k', { x: 1 })])
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(200)
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text()
    for (const name of ['outpost_connections 1', 'outpost_ops_in_total 1', 'outpost_acks_total 1', 'outpost_store_commit_seconds_bucket', 'outpost_bytes_in_total', 'outpost_bytes_out_total', 'outpost_reconcile_rounds_total', 'outpost_ops_out_total']) {
      expect(metrics).toContain(name)
    }
    expect((await fetch(`${relay.httpUrl}/nope`)).status).toBe(404)
    const drained = relay.drain()
    const error = await client.waitAny((m) => m.type === 'error')
    expect(error.type === 'error' && error.error.code).toBe('SHUTTING_DOWN')
    expect((await client.closed).code).toBe(1012)
    await drained
    expect((await fetch(`${relay.httpUrl}/readyz`)).status).toBe(503)
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(200)
  })

  it('syncs over POST /sync + GET /events with the same semantics as WebSocket', async () => {
    const { relay, stop } = await startRelay()
    cleanups.push(stop)
    const hello = await post(relay.httpUrl, { type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: 'http-replica' as ReplicaId, clientTime: Date.now() })
    expect(hello.status).toBe(200)
    expect(hello.reply?.type).toBe('welcome')
    // The fallback negotiates like a WebSocket: this session speaks wire v2 both ways.
    expect(hello.reply?.type === 'welcome' && hello.reply.version).toBe(2)
    const session = hello.session as string
    expect(session).toMatch(/^[0-9a-f]{32}$/)
    const stream = events(relay.httpUrl, session)
    cleanups.push(async () => stream.close())
    expect((await post(relay.httpUrl, { type: 'subscribe', sub: 1, shape: { map: 'todos' } }, session)).status).toBe(202)
    await stream.waitFor((m) => m.type === 'synced' && m.sub === 1)

    // A WebSocket client's write reaches the HTTP client...
    const { client: ws } = await TestClient.connect(relay.url)
    cleanups.push(() => ws.close())
    const wsLocal = new LocalShape({ map: 'todos' })
    await wsLocal.sync(ws)
    ws.skipAll()
    await ws.ops([update(ws.clock, 'todos', 'from-ws', { title: 'hi' })])
    const got = await stream.waitFor((m) => m.type === 'changes' && m.changes.some((c) => c.key === 'from-ws'))
    expect(got.type).toBe('changes')
    expect(stream.raw.filter((frame) => frame['type'] === 'changes' && Object.hasOwn(frame, 'batch'))).toHaveLength(1)

    // ...and the HTTP client's write reaches the WebSocket client, acked over the event stream.
    const { Hlc } = await import('@outpost/core')
    const clock = new Hlc({ replicaId: 'http-replica' as ReplicaId })
    expect((await post(relay.httpUrl, { type: 'ops', id: 5, changes: [update(clock, 'todos', 'from-http', { title: 'yo' })] }, session, 2)).status).toBe(202)
    const ack = await stream.waitFor((m) => m.type === 'ack' && m.id === 5)
    expect(ack.type === 'ack' && ack.results).toEqual([null])
    const change = await ws.next((m) => m.type === 'changes')
    expect(change.type === 'changes' && change.changes.map((c) => c.key)).toEqual(['from-http'])

    expect((await post(relay.httpUrl, { type: 'ping', clientTime: 1 }, 'not-a-session')).status).toBe(404)
  })

  it('drops an HTTP fallback session that sends nothing for two heartbeat intervals, with or without an event stream', async () => {
    const heartbeatMs = 200
    const { relay, stop } = await startRelay({ limits: { heartbeatMs } })
    cleanups.push(stop)
    const hello = (replicaId: string) => post(relay.httpUrl, { type: 'hello', versions: [...PROTOCOL_VERSIONS], replicaId: replicaId as ReplicaId, clientTime: Date.now() })
    const detached = (await hello('http-detached')).session as string
    const streaming = (await hello('http-streaming')).session as string
    const alive = (await hello('http-alive')).session as string
    const stream = events(relay.httpUrl, streaming)
    cleanups.push(async () => stream.close())
    expect(relay.sessionCount).toBe(3)
    // One client keeps posting pings (any frame counts as a heartbeat).
    const began = Date.now()
    while (relay.sessionCount > 1) {
      if (Date.now() - began > 10_000) throw new Error(`silent HTTP sessions still open after 10 s (${relay.sessionCount} sessions)`)
      expect((await post(relay.httpUrl, { type: 'ping', clientTime: Date.now() }, alive)).status).toBe(202)
      await new Promise((resolve) => setTimeout(resolve, heartbeatMs / 4))
    }
    console.log(`heartbeat ${heartbeatMs} ms: silent HTTP sessions dropped after ${Date.now() - began} ms`)
    expect((await post(relay.httpUrl, { type: 'ping', clientTime: 1 }, detached)).status).toBe(404)
    expect((await post(relay.httpUrl, { type: 'ping', clientTime: 1 }, streaming)).status).toBe(404)
    expect((await post(relay.httpUrl, { type: 'ping', clientTime: 1 }, alive)).status).toBe(202)
  })
})
