/**
 * A write the relay refuses for good, seen from the SDK: awaiting the handle resolves (the
 * write was durable locally), `persisted` rejects with the typed error, `concern` reads
 * 'rejected', and `status` counts it. Here the refusal is a pending write too large for the
 * relay's limits (announced in welcome), made while offline under the default limits.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { ValueTooLargeError } from '@outpost/core'
import { createRelay, type Relay } from '@outpost/server-lite'
import { createClient, type OutpostClient } from '../src/index'
import { freshDb } from './helpers'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function relayWith(maxFrameBytes: number): Promise<Relay> {
  const dataDir = await mkdtemp(join(tmpdir(), 'outpost-client-rejections-'))
  const relay = await createRelay({ port: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', limits: { maxFrameBytes } })
  cleanups.push(async () => {
    await relay.close()
    await rm(dataDir, { recursive: true, force: true })
  })
  return relay
}

function open(relay: Relay): OutpostClient {
  const db = freshDb('rejections')
  const client = createClient({ name: db.name, url: relay.url, mode: 'in-page', offline: true, engine: { indexedDB: db.indexedDB, WebSocket: WebSocket as never } })
  cleanups.push(() => client.close())
  return client
}

describe('a write refused for good', () => {
  it('rejects persisted with the typed error and shows in status; the writes behind it persist', async () => {
    const relay = await relayWith(256 * 1024)
    const client = open(relay)
    const docs = client.map<{ body: string }>('docs')
    const big = docs.set('big', { body: 'x'.repeat(600_000) })
    await big
    const small = docs.set('small', { body: 'ok' })
    await small
    const persisted = big.persisted.then(
      () => 'persisted',
      (error: unknown) => error,
    )
    await client.setOffline(false)
    await small.persisted
    const outcome = await persisted
    expect(outcome).toBeInstanceOf(ValueTooLargeError)
    expect((outcome as ValueTooLargeError).code).toBe('VALUE_TOO_LARGE')
    expect(big.concern).toBe('rejected')
    // The status feed is pushed by the engine; give it a moment to arrive.
    for (let i = 0; i < 200 && client.status.get().rejected.count === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    const status = client.status.get()
    expect(status.rejected.count).toBe(1)
    expect(status.rejected.keys).toEqual([{ map: 'docs', key: 'big' }])
    expect(await docs.get('big')).toBeUndefined()
  })
})
