/**
 * Every `changes` frame of a subscription carries its number (`frame`: 1, 2, … for slice,
 * replay, reconciliation answers and live fan-out alike), and every `synced` the count of
 * frames sent before it, so a client can tell that a frame was lost inside an open
 * connection (the worker's live anti-entropy relies on it). Raw protocol clients.
 */
import type { ChangesMessage, SyncedMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function connect(url: string): Promise<TestClient> {
  const { client } = await TestClient.connect(url, {})
  cleanups.push(() => client.close())
  return client
}

function framesOf(client: TestClient, sub: number): number[] {
  return client.messages.filter((m): m is ChangesMessage => m.type === 'changes' && m.sub === sub).map((m) => m.frame as number)
}

describe('changes frames are numbered per subscription', () => {
  it('numbers slice and live frames 1, 2, … and synced counts those sent before it', async () => {
    const started = await startRelay({ limits: { maxFrameBytes: 64 * 1024 } })
    cleanups.push(started.stop)
    const writer = await connect(started.relay.url)
    // About 300 KB: the slice needs several frames at a 64 KiB frame limit.
    for (let i = 0; i < 300; i += 30) await writer.ops(Array.from({ length: 30 }, (_, j) => update(writer.clock, 'docs', `d${i + j}`, { body: 'x'.repeat(1_000) })))
    const reader = await connect(started.relay.url)
    reader.send({ type: 'subscribe', sub: 7, shape: { map: 'docs' } })
    const synced = (await reader.waitAny((m) => m.type === 'synced' && m.sub === 7, 30_000)) as SyncedMessage
    const slice = framesOf(reader, 7)
    expect(slice.length).toBeGreaterThan(1)
    expect(slice).toEqual(slice.map((_, i) => i + 1))
    expect(synced.frames).toBe(slice.length)

    await writer.ops([update(writer.clock, 'docs', 'live-1', { v: 1 })])
    await writer.ops([update(writer.clock, 'docs', 'live-2', { v: 2 })])
    await reader.waitAny((m) => m.type === 'changes' && m.sub === 7 && m.changes.some((c) => c.key === 'live-2'))
    expect(framesOf(reader, 7).slice(-2)).toEqual([slice.length + 1, slice.length + 2])

    // A new subscription numbers its own frames from 1.
    reader.send({ type: 'subscribe', sub: 8, shape: { map: 'docs', where: { exists: 'v' } } })
    const second = (await reader.waitAny((m) => m.type === 'synced' && m.sub === 8, 30_000)) as SyncedMessage
    expect(framesOf(reader, 8)).toEqual([1])
    expect(second.frames).toBe(1)
  })
})
