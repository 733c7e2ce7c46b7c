/**
 * The engine offers wire versions 1 and 2 in `hello` and, once the relay chose 2, writes
 * and reads packed change lists: its `ops` go out packed, the relay's `changes` come in
 * packed, and two engines converge over them. Frames are watched on a real `ws` socket.
 */
import { decode, type ReplicaId } from '@outpost/core'
import { createRelay, type Relay } from '@outpost/server-lite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import type { Engine } from '../src/engine'
import type { WebSocketConstructor } from '../src/sync/sync-client'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

let relay: Relay
let removeDir: () => void
const engines = new Set<Engine>()

beforeEach(async () => {
  const dir = tempDir()
  removeDir = dir.remove
  relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent' })
})

afterEach(async () => {
  for (const engine of engines) await engine.close()
  engines.clear()
  await relay.close()
  removeDir()
})

type Frame = Record<string, unknown>

/** A `ws` WebSocket that keeps every frame's data as sent (`out`) and as received (`in`), before any unpacking. */
function watchedSocket(): { WebSocket: WebSocketConstructor; out: Frame[]; in: Frame[] } {
  const out: Frame[] = []
  const received: Frame[] = []
  class Watched extends WebSocket {
    constructor(url: string) {
      super(url)
      this.on('message', (data: Buffer) => received.push(decode(new Uint8Array(data)) as Frame))
    }

    override send(data: Uint8Array): void {
      out.push(decode(data) as Frame)
      super.send(data)
    }
  }
  return { WebSocket: Watched as unknown as WebSocketConstructor, out, in: received }
}

function start(socket: WebSocketConstructor): Engine {
  const engine = engineOn(freshIdb(), { url: relay.url, WebSocket: socket })
  engines.add(engine)
  return engine
}

describe('wire version', () => {
  it('offers 1 and 2, speaks 2 both ways once welcomed, and converges', async () => {
    const writerWire = watchedSocket()
    const readerWire = watchedSocket()
    const writer = start(writerWire.WebSocket)
    unwrap(await writer.ready())
    for (let i = 0; i < 50; i++) unwrap(await writer.set('docs', `d${i}`, { title: `doc ${i}`, n: i, tags: ['a', String(i)] }))
    await waitFor('writes acked', async () => (await writer.status()).pendingWrites === 0)

    const reader = start(readerWire.WebSocket)
    unwrap(await reader.subscribeShape({ map: 'docs' }))
    await waitFor('initial sync', () => reader.receivedRecords >= 50)
    expect(unwrap(await reader.get('docs', 'd7'))).toEqual({ title: 'doc 7', n: 7, tags: ['a', '7'] })

    for (const wire of [writerWire, readerWire]) {
      const hello = wire.out.find((frame) => frame['type'] === 'hello')
      expect(hello?.['versions']).toEqual([1, 2])
      expect(wire.in.find((frame) => frame['type'] === 'welcome')?.['version']).toBe(2)
    }
    const ops = writerWire.out.filter((frame) => frame['type'] === 'ops')
    expect(ops.length).toBeGreaterThan(0)
    expect(ops.every((frame) => Object.hasOwn(frame, 'batch') && !Object.hasOwn(frame, 'changes'))).toBe(true)
    const slices = readerWire.in.filter((frame) => frame['type'] === 'changes')
    expect(slices.length).toBeGreaterThan(0)
    expect(slices.every((frame) => Object.hasOwn(frame, 'batch'))).toBe(true)
    // The writer's replica id is in each packed batch's replica table once, not in every stamp.
    const replicas = (slices[0]?.['batch'] as unknown[])[2] as string[]
    expect(replicas).toEqual([writer.replicaId as ReplicaId])
  })
})
