/**
 * The slice (`subscribe` with nothing held) over the LMDB store: a shape with no `where`
 * and no rule filter takes a fast path (membership without building each record's view),
 * and its first frame goes out after a short first scan page. What the client decodes
 * must be exactly what the predicate path gives (same changes, same order, tombstones
 * included), in wire v1 and v2, and every frame stays within the frame limits.
 */
import { isAlive, type Change, type ChangesMessage, type LwwRecordState, type SyncedMessage } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { remove, set } from './helpers/changes'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function connect(url: string, versions: number[]): Promise<TestClient> {
  const { client } = await TestClient.connect(url, { versions, window: 256 * 1024 })
  cleanups.push(() => client.close())
  return client
}

/** Subscribes and collects the slice's frames up to `synced` (paying credit for each paced frame). */
async function slice(client: TestClient, sub: number, shape: object): Promise<ChangesMessage[]> {
  client.send({ type: 'subscribe', sub, shape } as never)
  const frames: ChangesMessage[] = []
  for (;;) {
    const message = await client.next((m) => (m.type === 'changes' || m.type === 'synced') && m.sub === sub, 30_000)
    if (message.type === 'synced') {
      expect((message as SyncedMessage).frames).toBe(frames.length)
      return frames
    }
    const changes = message as ChangesMessage
    frames.push(changes)
    // Pays more than any frame holds (credit only lowers what is owed, down to 0).
    if (changes.paced === true) client.send({ type: 'credit', bytes: 1024 * 1024 })
  }
}

const RECORDS = 2_600

describe('slice streaming', () => {
  it.each([1, 2])('wire v%i: the unfiltered fast path decodes to exactly what the predicate path gives, first frame small', async (version) => {
    const started = await startRelay({ limits: { maxFrameBytes: 128 * 1024 } })
    cleanups.push(started.stop)
    const writer = await connect(started.relay.url, [1, 2])
    for (let i = 0; i < RECORDS; i += 200) {
      await writer.ops(Array.from({ length: 200 }, (_, j) => set(writer.clock, 'items', `k${String(i + j).padStart(5, '0')}`, { n: i + j, body: 'x'.repeat((i + j) % 97), tag: (i + j) % 3 === 0 ? null : 'a' })))
    }
    // Tombstones travel in a slice too (a delete is shown to whoever could see the record).
    await writer.ops(Array.from({ length: 50 }, (_, j) => remove(writer.clock, 'items', `k${String(j * 7).padStart(5, '0')}`)))

    const reader = await connect(started.relay.url, [version])
    const fast = await slice(reader, 1, { map: 'items' })
    // Matches every record, alive or deleted: the path that builds each record's view and runs the predicate.
    const always = { or: [{ exists: 'n' }, { not: { exists: 'n' } }] }
    const slow = await slice(reader, 2, { map: 'items', where: always })

    const changesOf = (frames: ChangesMessage[]): Change[] => frames.flatMap((frame) => frame.changes)
    expect(changesOf(fast)).toHaveLength(RECORDS)
    expect(changesOf(fast)).toEqual(changesOf(slow))
    expect(new Set(changesOf(fast).map((change) => change.key)).size).toBe(RECORDS)
    expect(changesOf(fast).filter((change) => !isAlive(change.state as LwwRecordState))).toHaveLength(50)
    // The first frame follows a short first scan page, not a full one.
    expect((fast[0] as ChangesMessage).changes.length).toBeLessThanOrEqual(200)
    expect(fast.length).toBeGreaterThan(2)
    expect(reader.frameSizes.every((bytes) => bytes <= 128 * 1024)).toBe(true)
  }, 120_000)
})
