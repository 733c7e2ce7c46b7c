/**
 * Data from the relay is checked once, where it is received: a change holding a value or a
 * stamp core's rules refuse (NaN, nesting over the depth limit, a malformed HLC stamp) is
 * refused with INVALID_MESSAGE at receipt, never reaches memory or the store, and costs
 * neither the rest of its frame nor the session. The relay here is scripted (raw msgpack,
 * none of the relay's own checks), as a buggy or hostile relay would be.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Packr } from 'msgpackr'
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws'
import { VALUE_LIMITS, decodeClientMessage, shapeKey, type ClientMessage, type SerializedError, type ServerMessage } from '@outpost/core'
import { IdbStore } from '../src/store/idb-store'
import { engineOn, freshIdb, unwrap, waitFor } from './helpers'

const STAMP = '00000000a0-0000-relayreplica'
// Raw msgpack, as a relay that skipped its checks would send: core's encoder is not in the way.
const packr = new Packr({ useRecords: false, moreTypes: false })

function lww(key: string, value: unknown, stamp: string = STAMP): unknown {
  return { kind: 'lww', map: 'todos', key, state: { fields: [['title', value, stamp]], deleted: null } }
}

function deep(levels: number): unknown {
  let value: unknown = 'bottom'
  for (let i = 0; i < levels; i++) value = [value]
  return value
}

interface Relay {
  url: string
  connections: number
  received: ClientMessage[]
  send(message: unknown): void
  close(): Promise<void>
}

/** A relay that welcomes, answers `subscribe` with a slice of `slice`, then does what the test sends. */
async function scriptedRelay(slice: readonly unknown[]): Promise<Relay> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const sockets = new Set<ServerSocket>()
  const relay: Relay = {
    url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: 0,
    received: [],
    send: (message) => {
      for (const socket of sockets) socket.send(packr.pack(message))
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.terminate()
        server.close(() => resolve())
      }),
  }
  server.on('connection', (socket) => {
    relay.connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const send = (m: unknown): void => socket.send(packr.pack(m))
    socket.on('message', (data: Buffer) => {
      const message = decodeClientMessage(new Uint8Array(data))
      relay.received.push(message)
      if (message.type === 'hello') {
        send({ type: 'welcome', version: 1, serverTime: Date.now(), replicaId: message.replicaId, horizonMs: 86_400_000, resync: false } satisfies ServerMessage)
      } else if (message.type === 'subscribe') {
        const root = { path: '', hash: '0123456789abcdef', count: slice.length }
        send({ type: 'subscribed', sub: message.sub, root, resume: 'slice' })
        send({ type: 'changes', sub: message.sub, changes: slice, paced: true, frame: 1 })
        send({ type: 'synced', sub: message.sub, root, serverTime: Date.now(), cursor: 'cursor-1', frames: 1 })
      }
    })
  })
  return relay
}

const cleanup: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

describe('changes received from the relay', () => {
  it('refuses a malformed value or stamp at receipt with INVALID_MESSAGE; the rest of the frame is stored and the session stays up', async () => {
    const slice = [
      lww('good-1', 'kept'),
      lww('nan', Number.NaN),
      lww('too-deep', deep(VALUE_LIMITS.maxDepth + 2)),
      lww('bad-stamp', 'fine value', 'not-a-stamp'),
      lww('good-2', 'kept too'),
    ]
    const relay = await scriptedRelay(slice)
    cleanup.push(() => relay.close())
    const idb = freshIdb()
    const engine = engineOn(idb, { url: relay.url })
    let closed = false
    cleanup.push(async () => {
      if (!closed) await engine.close()
    })
    unwrap(await engine.subscribeShape({ map: 'todos' }))
    await waitFor('the good records of the slice', async () => unwrap(await engine.get('todos', 'good-2')) !== undefined)

    const status = await engine.status()
    const error = status.lastError as SerializedError
    expect(error.code).toBe('INVALID_MESSAGE')
    expect(error.details).toMatchObject({ map: 'todos', key: 'nan', reason: 'INVALID_VALUE', refused: 3 })
    expect(error.message).toContain('todos/nan')
    for (const key of ['nan', 'too-deep', 'bad-stamp']) expect(unwrap(await engine.get('todos', key))).toBeUndefined()

    // The session survives: the same connection carries a live change afterwards.
    const sub = (relay.received.find((m) => m.type === 'subscribe') as { sub: number }).sub
    relay.send({ type: 'changes', sub, changes: [lww('live', 'after the refusal')], frame: 2, seq: 10 })
    await waitFor('the live change', async () => unwrap(await engine.get('todos', 'live')) !== undefined)
    expect(relay.connections).toBe(1)
    expect((await engine.status()).connection).toBe('live')

    // What reached the store: the accepted records, none of the refused ones.
    await engine.close()
    closed = true
    const store = await IdbStore.open('outpost:test', { indexedDB: idb })
    const stored = await store.loadCollection('r/lww/todos')
    await store.close()
    expect([...stored.keys()].sort()).toEqual(['good-1', 'good-2', 'live'])
  })

  it.each([
    ['a sync that took every change keeps its cursor', [lww('good', 'kept')], 'cursor-1'],
    ['a sync that refused a change keeps no cursor (the shape is not complete)', [lww('good', 'kept'), lww('nan', Number.NaN)], undefined],
  ])('%s', async (_, slice, cursor) => {
    const relay = await scriptedRelay(slice)
    cleanup.push(() => relay.close())
    const idb = freshIdb()
    const engine = engineOn(idb, { url: relay.url })
    unwrap(await engine.subscribeShape({ map: 'todos' }))
    await waitFor('the good record', async () => unwrap(await engine.get('todos', 'good')) !== undefined)
    await waitFor('synced', async () => (await engine.status()).connection === 'live')
    await engine.close()
    const store = await IdbStore.open('outpost:test', { indexedDB: idb })
    const saved = await store.getMeta(`cursor/${shapeKey({ map: 'todos' })}`)
    await store.close()
    expect(saved).toBe(cursor)
  })
})
