/**
 * Compression of large frames (permessage-deflate): negotiated by a client that offers
 * it, used for slice frames and not for small live ones, off when configured off, and
 * bounded like any frame (a compressed frame that inflates past the limit is refused).
 * Bytes are counted on the TCP connection, through a proxy.
 */
import { createServer, connect, type Socket } from 'node:net'
import { encode, type Change } from '@outpost/core'
import { prng, testSeed } from '@outpost/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config'
import { CLOSE } from '../src/connection-log'
import { TestClient, startRelay } from './helpers/client'
import { set } from './helpers/changes'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A TCP proxy to `port` that counts the bytes the relay sends (WebSocket framing included). */
async function countingProxy(port: number): Promise<{ url: string; down: () => number }> {
  let down = 0
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.on('data', (chunk: Buffer) => upstream.write(chunk))
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length
      client.write(chunk)
    })
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) socket.on('close', end).on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no proxy address')
  return { url: `ws://127.0.0.1:${address.port}`, down: () => down }
}

const FILLER = 'the quick brown fox jumps over the lazy dog while the relay streams the slice '

/** Writes `count` records of ~200 bytes to `todos` through a fresh client. */
async function seed(url: string, count: number): Promise<void> {
  const { client } = await TestClient.connect(url)
  const changes: Change[] = []
  for (let i = 0; i < count; i++) changes.push(set(client.clock, 'todos', `t${String(i).padStart(5, '0')}`, { title: `${i} ${FILLER}`, n: i, done: i % 2 === 0 }))
  await client.ops(changes)
  await client.close()
}

/** Subscribes to `todos` through a counting proxy; returns the wire bytes and the frame bytes of the slice. */
async function slice(url: string, perMessageDeflate: boolean): Promise<{ wire: number; frames: number; extensions: string; client: TestClient; down: () => number }> {
  const proxy = await countingProxy(Number(new URL(url).port))
  const client = await TestClient.open(proxy.url, { perMessageDeflate })
  cleanups.push(() => client.close())
  client.hello()
  await client.next((m) => m.type === 'welcome')
  const before = proxy.down()
  const bytesBefore = client.bytesReceived
  client.send({ type: 'subscribe', sub: 1, shape: { map: 'todos' } })
  await client.next((m) => m.type === 'synced' && m.sub === 1)
  return { wire: proxy.down() - before, frames: client.bytesReceived - bytesBefore, extensions: client.ws.extensions, client, down: proxy.down }
}

describe('compression', () => {
  it('is negotiated by default and shrinks slice frames, while a small live frame goes out as it is', async () => {
    const { relay, stop } = await startRelay()
    cleanups.push(stop)
    await seed(relay.url, 2_000)
    const compressed = await slice(relay.url, true)
    const plain = await slice(relay.url, false)
    expect(compressed.extensions).toContain('permessage-deflate')
    expect(plain.extensions).toBe('')
    // The same frames either way; on the wire, compressed to a fraction.
    expect(compressed.frames).toBe(plain.frames)
    expect(plain.wire).toBeGreaterThanOrEqual(plain.frames)
    expect(compressed.wire).toBeLessThan(plain.wire / 2)
    console.log(`[figure] 2,000-record slice (wire v2): ${plain.wire} B plain, ${compressed.wire} B with permessage-deflate (${(compressed.wire / plain.wire).toFixed(3)})`)

    // A live change is far under the threshold: its frame crosses the wire uncompressed (frame plus a few header bytes).
    const { client: writer } = await TestClient.connect(relay.url)
    cleanups.push(() => writer.close())
    const before = compressed.down()
    const frameBytes = compressed.client.bytesReceived
    await writer.ops([set(writer.clock, 'todos', 'live', { title: FILLER.repeat(3) })])
    await compressed.client.next((m) => m.type === 'changes' && m.changes.some((c) => c.key === 'live'))
    const frame = compressed.client.bytesReceived - frameBytes
    expect(compressed.down() - before).toBeGreaterThanOrEqual(frame)
  })

  it('still closes a compressing subscriber that stops reading, and keeps serving the writer', { timeout: 60_000 }, async () => {
    const maxBufferedBytesPerConnection = 256 * 1024
    const { relay, stop } = await startRelay({ limits: { maxFrameBytes: 64 * 1024, maxBufferedBytesPerConnection, opsPerSecond: 1e6, opsBurst: 1e6, subjectOpsPerSecond: 1e6, subjectOpsBurst: 1e6 } })
    cleanups.push(stop)
    const { client: reader } = await TestClient.connect(relay.url, { perMessageDeflate: true })
    expect(reader.ws.extensions).toContain('permessage-deflate')
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'feed' } })
    await reader.waitAny((m) => m.type === 'synced')
    ;(reader.ws as unknown as { _socket: Socket })._socket.pause()
    const { client: writer } = await TestClient.connect(relay.url)
    cleanups.push(() => writer.close())
    const random = prng(testSeed('compression slow consumer'))
    let written = 0
    // Fan-out frames over the threshold, of text that compresses about 2:1, until the relay gives up on the reader.
    while (relay.sessionCount === 2 && written < 400 * 1024 * 1024) {
      const body = (): string => Array.from({ length: 100 }, () => Math.floor(random() * 36 ** 8).toString(36)).join(' ')
      const ack = await writer.ops(Array.from({ length: 40 }, (_, i) => set(writer.clock, 'feed', `r${i}`, { body: body() })))
      expect(ack.results.every((r) => r === null)).toBe(true)
      written += 40 * 900
    }
    expect(relay.sessionCount).toBe(1)
    expect((await writer.ops([set(writer.clock, 'feed', 'after', { ok: true })])).results).toEqual([null])
  })

  it('handles what a compressing client sent just before it closed (a presence leave on reload, last writes)', async () => {
    const { relay, stop } = await startRelay()
    cleanups.push(stop)
    const { client: listener } = await TestClient.connect(relay.url)
    cleanups.push(() => listener.close())
    listener.send({ type: 'topic-sub', topic: 'room' })
    await new Promise((resolve) => setTimeout(resolve, 100))
    for (let round = 0; round < 5; round++) {
      const { client: leaving } = await TestClient.connect(relay.url, { perMessageDeflate: true })
      expect(leaving.ws.extensions).toContain('permessage-deflate')
      // The `ws` client compresses every frame it sends once the extension is on, as browsers do.
      leaving.send({ type: 'topic-pub', id: 1, topic: 'room', data: { leave: round } })
      leaving.send({ type: 'ops', id: 2, changes: [set(leaving.clock, 'last', `k${round}`, { round })] })
      // Gone without a close frame, as a worker that is stopped (a reloaded tab) or a dropped device.
      while (leaving.ws.bufferedAmount > 0) await new Promise((resolve) => setTimeout(resolve, 1))
      ;(leaving.ws as unknown as { _socket: Socket })._socket.destroy()
      await listener.next((m) => m.type === 'topic-msg' && (m.data as { leave?: number }).leave === round)
    }
    const { client: reader } = await TestClient.connect(relay.url)
    cleanups.push(() => reader.close())
    reader.send({ type: 'subscribe', sub: 1, shape: { map: 'last' } })
    const changes: string[] = []
    for (;;) {
      const m = await reader.next((x) => (x.type === 'changes' || x.type === 'synced') && x.sub === 1)
      if (m.type === 'synced') break
      if (m.type === 'changes') changes.push(...m.changes.map((c) => c.key))
    }
    expect(changes.sort()).toEqual(['k0', 'k1', 'k2', 'k3', 'k4'])
  })

  it('is not offered when configured off', async () => {
    const { relay, stop } = await startRelay({ compression: false })
    cleanups.push(stop)
    await seed(relay.url, 10)
    expect((await slice(relay.url, true)).extensions).toBe('')
  })

  it('refuses a compressed frame that inflates past the frame limit, and keeps serving', async () => {
    const { relay, stop } = await startRelay({ limits: { maxFrameBytes: 64 * 1024 } })
    cleanups.push(stop)
    const bomb = await TestClient.open(relay.url, { perMessageDeflate: true })
    bomb.hello()
    await bomb.next((m) => m.type === 'welcome')
    // 1 MiB of one byte deflates to about a kilobyte.
    bomb.ws.send(encode({ type: 'ping', clientTime: 1, pad: 'a'.repeat(1024 * 1024) }))
    expect((await bomb.closed).code).toBe(CLOSE.TOO_BIG)
    const { client, welcome } = await TestClient.connect(relay.url)
    cleanups.push(() => client.close())
    expect(welcome.type).toBe('welcome')
  })

  it('takes true, false or a threshold in bytes, and refuses anything else', () => {
    expect(parseConfig({}).compression).toBe(true)
    expect(parseConfig({ compression: 65_536 }).compression).toBe(65_536)
    expect(() => parseConfig({ compression: -1 })).toThrow(/compression/)
    expect(() => parseConfig({ compression: 'yes' })).toThrow(/compression/)
  })
})
