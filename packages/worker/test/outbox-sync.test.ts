/**
 * The outbox against a scripted relay on a real `ws` server (127.0.0.1, port 0) that can
 * withhold acks, ack selectively, or expire tokens, so what the engine sends is counted
 * frame by frame: pending ops go once per connection and again only on the retry timer;
 * an ack drops exactly the acknowledged opIds; permanent rejections are kept with their
 * error and not retried; token expiry calls the auth provider and offline writes survive.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws'
import { decodeClientMessage, encodeMessage, type ClientMessage, type OpsMessage, type SerializedError, type ServerMessage } from '@outpost/core'
import { IdbStore } from '../src/store/idb-store'
import { OUTBOX_COLLECTION } from '../src/outbox'
import { engineOn, freshIdb, unwrap, waitFor } from './helpers'

interface Script {
  /** Answer to an ops frame: results, or undefined to withhold the ack. */
  ack?: (ops: OpsMessage, index: number) => (SerializedError | null)[] | undefined
  /** Close code for a hello (undefined: accept). */
  onHello?: (token: string | undefined, index: number) => number | undefined
}

interface ScriptedRelay {
  url: string
  received: ClientMessage[]
  ops: OpsMessage[]
  tokens: (string | undefined)[]
  connections: number
  sockets: Set<ServerSocket>
  close(): Promise<void>
}

async function scriptedRelay(script: Script): Promise<ScriptedRelay> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const relay: ScriptedRelay = {
    url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`,
    received: [],
    ops: [],
    tokens: [],
    connections: 0,
    sockets: new Set(),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of relay.sockets) s.terminate()
        server.close(() => resolve())
      }),
  }
  server.on('connection', (socket) => {
    relay.connections++
    relay.sockets.add(socket)
    socket.on('close', () => relay.sockets.delete(socket))
    const send = (m: ServerMessage): void => socket.send(encodeMessage(m))
    socket.on('message', (data: Buffer) => {
      const message = decodeClientMessage(new Uint8Array(data))
      relay.received.push(message)
      if (message.type === 'hello') {
        relay.tokens.push(message.token)
        const code = script.onHello?.(message.token, relay.tokens.length - 1)
        if (code !== undefined) {
          socket.close(code, 'token expired')
          return
        }
        send({ type: 'welcome', version: 1, serverTime: Date.now(), replicaId: message.replicaId, horizonMs: 86_400_000, resync: false })
      } else if (message.type === 'ops') {
        relay.ops.push(message)
        const results = script.ack?.(message, relay.ops.length - 1)
        if (results !== undefined) send({ type: 'ack', id: message.id, results, serverTime: Date.now() })
      }
    })
  })
  return relay
}

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function opsChanges(relay: ScriptedRelay): number {
  return relay.ops.reduce((n, o) => n + o.changes.length, 0)
}

describe('outbox over a connection', () => {
  it('sends pending ops once per connection, not again on each new write; retries only on the timer', async () => {
    const relay = await scriptedRelay({}) // never acks
    cleanup.push(() => relay.close())
    const engine = engineOn(freshIdb(), { url: relay.url, startOffline: true, retryMs: 1_500 })
    cleanup.push(() => engine.close())
    for (let i = 0; i < 50; i++) unwrap(await engine.set('m', `a${i}`, { i }))
    await engine.setOffline(false)
    await waitFor('the 50 offline writes', () => opsChanges(relay) === 50)
    // New writes while 50 are unacknowledged: each goes alone, the pending ones are not re-sent.
    for (let i = 0; i < 20; i++) unwrap(await engine.set('m', `b${i}`, { i }))
    await waitFor('the 20 new writes', () => opsChanges(relay) === 70)
    await new Promise((r) => setTimeout(r, 300))
    expect(opsChanges(relay)).toBe(70)
    // The retry timer sends the unacknowledged ops again.
    await waitFor('a timed retry', () => opsChanges(relay) >= 140, 10_000)
    expect((await engine.status()).pendingWrites).toBe(70)
  })

  it("one tab's ack never drops another tab's unsent write", async () => {
    // Acks only the first ops frame.
    const relay = await scriptedRelay({ ack: (ops, i) => (i === 0 ? ops.changes.map(() => null) : undefined) })
    cleanup.push(() => relay.close())
    const idb = freshIdb()
    const engine = engineOn(idb, { url: relay.url })
    unwrap(await engine.ready())
    await waitFor('live', async () => (await engine.status()).connection === 'live')
    const progress: unknown[] = []
    const tabA = unwrap(await engine.set('m', 'from-tab-a', { v: 1 }))
    await engine.watchWrite(tabA.opId, (c) => void progress.push(c))
    await waitFor('tab A persisted', () => progress.includes('persisted'))
    await engine.setOffline(true)
    const tabB = unwrap(await engine.set('m', 'from-tab-b', { v: 2 }))
    await engine.setOffline(false)
    await waitFor("tab B's write sent", () => relay.ops.some((o) => o.changes.some((c) => c.key === 'from-tab-b')))
    await new Promise((r) => setTimeout(r, 100))
    const status = await engine.status()
    expect(status.pendingWrites).toBe(1)
    await engine.close()
    const store = await IdbStore.open('outpost:test', { indexedDB: idb })
    const outbox = await store.scan(OUTBOX_COLLECTION)
    expect(outbox.map((e) => (e.value as { opId: number }).opId)).toEqual([tabB.opId])
    await store.close()
  })

  it('keeps permanently rejected writes with their error and does not retry them', async () => {
    const relay = await scriptedRelay({ ack: (ops) => ops.changes.map((c) => (c.key === 'bad' ? { code: 'FORBIDDEN', message: 'no writes to bad' } : null)) })
    cleanup.push(() => relay.close())
    const engine = engineOn(freshIdb(), { url: relay.url, retryMs: 200 })
    cleanup.push(() => engine.close())
    unwrap(await engine.set('m', 'bad', { v: 1 }))
    unwrap(await engine.set('m', 'good', { v: 1 }))
    await waitFor('rejection recorded', async () => (await engine.status()).lastError?.code === 'FORBIDDEN')
    await new Promise((r) => setTimeout(r, 600))
    expect(relay.ops.flatMap((o) => o.changes).filter((c) => c.key === 'bad')).toHaveLength(1)
    expect((await engine.status()).pendingWrites).toBe(0)
  })

  it('refreshes an expired token through the auth provider and keeps offline writes', async () => {
    // The first two hellos are refused as expired (close 4003).
    const relay = await scriptedRelay({ onHello: (_token, i) => (i < 2 ? 4003 : undefined), ack: (ops) => ops.changes.map(() => null) })
    cleanup.push(() => relay.close())
    const idb = freshIdb()
    const engine = engineOn(idb, { url: relay.url, token: 'stale', startOffline: true })
    cleanup.push(() => engine.close())
    unwrap(await engine.set('m', 'offline-write', { v: 1 }))
    let calls = 0
    await engine.setAuthProvider(async () => `fresh-${++calls}`)
    const states: string[] = []
    await engine.subscribeStatus((s) => void states.push(s.connection))
    await engine.setOffline(false)
    await waitFor('live after refresh', async () => (await engine.status()).connection === 'live')
    expect(relay.tokens).toEqual(['stale', 'fresh-1', 'fresh-2'])
    expect(states).toContain('auth-expired')
    await waitFor('offline write acked', async () => (await engine.status()).pendingWrites === 0)
    expect(relay.ops.flatMap((o) => o.changes).map((c) => c.key)).toContain('offline-write')
  })

  it('"work offline" is remembered for the database: a restarted engine stays offline until setOffline(false)', async () => {
    const relay = await scriptedRelay({ ack: (ops) => ops.changes.map(() => null) })
    cleanup.push(() => relay.close())
    const idb = freshIdb()
    const first = engineOn(idb, { url: relay.url })
    unwrap(await first.ready())
    await waitFor('live', async () => (await first.status()).connection === 'live')
    await first.setOffline(true)
    unwrap(await first.set('m', 'queued', { v: 1 }))
    await first.close()
    const connectionsBefore = relay.connections

    // The reload: a new engine on the same database, with no offline option.
    const second = engineOn(idb, { url: relay.url })
    cleanup.push(() => second.close())
    unwrap(await second.ready())
    await new Promise((r) => setTimeout(r, 300))
    expect((await second.status()).connection).toBe('offline')
    expect((await second.status()).pendingWrites).toBe(1)
    expect(relay.connections).toBe(connectionsBefore)
    expect(relay.ops.flatMap((o) => o.changes).map((c) => c.key)).not.toContain('queued')

    // Only turning it off connects and sends what was queued, and that is remembered too.
    await second.setOffline(false)
    await waitFor('queued write acked', async () => (await second.status()).pendingWrites === 0)
    expect(relay.ops.flatMap((o) => o.changes).map((c) => c.key)).toContain('queued')
    await second.close()
    const third = engineOn(idb, { url: relay.url })
    cleanup.push(() => third.close())
    unwrap(await third.ready())
    await waitFor('live again after a restart', async () => (await third.status()).connection === 'live')
  })
})
