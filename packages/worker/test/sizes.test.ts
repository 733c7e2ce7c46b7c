/**
 * Sizes: nothing a user writes can wedge a device or a map's subscribers.
 *
 * - A change that could not be sent (or a record it would make too large) is refused at
 *   write time with VALUE_TOO_LARGE, before anything is stored, under the relay's limits
 *   from `welcome` (remembered for offline writes) or the documented defaults.
 * - Outbox batches, slices and reconciliation answers are cut by bytes, so many
 *   medium-sized writes, or a map of big records, still travel.
 * Engines run on fake IndexedDB against the real relay (LMDB in a temp dir).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_WIRE_LIMITS, itemBudget, type SerializedError } from '@outpost/core'
import { createRelay, type Relay } from '@outpost/server-lite'
import type { Engine } from '../src/engine'
import type { Result } from '../src/engine-api'
import { engineOn, freshIdb, tempDir, unwrap, waitFor } from './helpers'

const relays: { relay: Relay; remove: () => void }[] = []
const engines = new Set<Engine>()

afterEach(async () => {
  for (const e of engines) await e.close()
  engines.clear()
  for (const { relay, remove } of relays.splice(0)) {
    await relay.close()
    remove()
  }
})

async function relayWith(maxFrameBytes?: number): Promise<Relay> {
  const dir = tempDir()
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir: dir.path, logLevel: 'silent', ...(maxFrameBytes === undefined ? {} : { limits: { maxFrameBytes } }) })
  relays.push({ relay, remove: dir.remove })
  return relay
}

function start(options: Parameters<typeof engineOn>[1] & { idb?: ReturnType<typeof freshIdb> } = {}): Engine {
  const { idb = freshIdb(), ...rest } = options
  const engine = engineOn(idb, rest)
  engines.add(engine)
  return engine
}

async function live(engine: Engine): Promise<void> {
  unwrap(await engine.ready())
  await waitFor('live', async () => (await engine.status()).connection === 'live')
}

function refusal<T>(result: Result<T>): SerializedError {
  if (result.ok) throw new Error('expected the write to be refused')
  return result.error
}

const text = (bytes: number): string => 'x'.repeat(bytes)

describe('write-time size limits', () => {
  it('refuses a record over the default limit offline, before anything is stored', async () => {
    const engine = start()
    const limit = itemBudget(DEFAULT_WIRE_LIMITS).bytes
    const error = refusal(await engine.set('docs', 'big', { body: text(DEFAULT_WIRE_LIMITS.maxFrameBytes + 10) }))
    expect(error.code).toBe('VALUE_TOO_LARGE')
    expect(error.details?.['limitBytes']).toBe(limit)
    expect(error.message).toContain(String(limit))
    expect(unwrap(await engine.get('docs', 'big'))).toBeUndefined()
    expect((await engine.status()).pendingWrites).toBe(0)
    // Just under the limit is fine.
    unwrap(await engine.set('docs', 'fits', { body: text(limit - 200) }))
  })

  it('refuses an update that would make the merged record too large, and keeps the record as it was', async () => {
    const engine = start()
    unwrap(await engine.update('docs', 'd', { a: text(700_000) }))
    const error = refusal(await engine.update('docs', 'd', { b: text(700_000) }))
    expect(error.code).toBe('VALUE_TOO_LARGE')
    expect(error.message).toContain('after this write')
    const record = unwrap(await engine.get('docs', 'd'))
    expect(Object.keys(record ?? {})).toEqual(['a'])
    expect((await engine.status()).pendingWrites).toBe(1)
  })

  it('lets a set replace a large field with another: the replaced value is not kept', async () => {
    const engine = start()
    unwrap(await engine.set('docs', 'd', { a: text(700_000) }))
    unwrap(await engine.set('docs', 'd', { b: text(700_000) }))
    expect(Object.keys(unwrap(await engine.get('docs', 'd')) ?? {})).toEqual(['b'])
  })

  it("uses the relay's limits from welcome, and remembers them offline after a restart", async () => {
    const relay = await relayWith(128 * 1024)
    const idb = freshIdb()
    let engine = start({ idb, url: relay.url })
    await live(engine)
    const error = refusal(await engine.set('docs', 'mid', { body: text(200_000) }))
    expect(error.code).toBe('VALUE_TOO_LARGE')
    expect(error.details?.['maxFrameBytes']).toBe(128 * 1024)
    await engine.close()
    engines.delete(engine)
    engine = start({ idb, startOffline: true })
    expect(refusal(await engine.set('docs', 'mid', { body: text(200_000) })).code).toBe('VALUE_TOO_LARGE')
  })
})

describe('byte-bounded frames', () => {
  it('delivers 400 offline writes of 4 KB each', async () => {
    const relay = await relayWith()
    const engine = start({ url: relay.url, startOffline: true })
    const writes = await Promise.all(Array.from({ length: 400 }, (_, i) => engine.set('notes', `n${i}`, { body: text(4_000) })))
    expect(writes.every((w) => w.ok)).toBe(true)
    await engine.setOffline(false)
    await live(engine)
    await waitFor('every write acked', async () => (await engine.status()).pendingWrites === 0, 20_000)
    const status = await engine.status()
    expect(status.lastError).toBeNull()
    expect(engine.syncStats.framesSent).toBeGreaterThan(2)
  })

  it('syncs a map holding a 200 KB and a 900 KB record to a new device', async () => {
    const relay = await relayWith()
    const writer = start({ url: relay.url })
    await live(writer)
    unwrap(await writer.set('files', 'small', { body: text(200_000) }))
    unwrap(await writer.set('files', 'large', { body: text(900_000) }))
    await waitFor('writer acked', async () => (await writer.status()).pendingWrites === 0, 20_000)
    const reader = start({ url: relay.url })
    unwrap(await reader.subscribeShape({ map: 'files' }))
    await live(reader)
    await waitFor('both records', async () => unwrap(await reader.get('files', 'large')) !== undefined && unwrap(await reader.get('files', 'small')) !== undefined, 20_000)
    expect(((await reader.status()).lastError)).toBeNull()
  })
})
