/**
 * Writes through the fair scheduler, against an in-process relay on LMDB: a large `ops`
 * batch is handled in pieces but acked once, completely and in batch order; a small
 * write from another connection is committed while a flood is under way, after at most a
 * few small transactions (counted in changes committed, never in time); an over-rate
 * batch is still refused with RATE_LIMITED.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { LmdbStore } from '../src/store/lmdb-store'
import { MAX_TRANSACTION_CHANGES } from '../src/sync/sync-service'
import { update } from './helpers/changes'
import { TestClient, startRelay, tempDir } from './helpers/client'

const stops: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
})

async function relayWithStore(limits: Record<string, number> = {}) {
  const dir = tempDir('outpost-fair-')
  const store = LmdbStore.open({ path: dir.path })
  const started = await startRelay({ limits }, { store })
  stops.push(() => dir.remove())
  stops.push(started.stop)
  return { ...started, store }
}

describe('fair writes', () => {
  it('acks a batch larger than a piece once, with one result per change, before a later small batch of the same connection', async () => {
    const { relay, store } = await relayWithStore()
    const { client } = await TestClient.connect(relay.url)
    stops.push(() => client.close())
    const big = Array.from({ length: 1_500 }, (_, i) => update(client.clock, 'm', `k${i}`, { i }))
    // A malformed change in the middle is refused alone.
    const changes: unknown[] = [...big]
    changes[700] = { kind: 'lww', map: 'm', key: 'bad' }
    client.send({ type: 'ops', id: 1, changes: changes as typeof big })
    client.send({ type: 'ops', id: 2, changes: [update(client.clock, 'm', 'small', { n: 1 })] })
    const first = await client.next((m) => m.type === 'ack')
    const second = await client.next((m) => m.type === 'ack')
    expect(first.type === 'ack' && first.id).toBe(1)
    expect(second.type === 'ack' && second.id).toBe(2)
    if (first.type !== 'ack') throw new Error('unreachable')
    expect(first.results).toHaveLength(1_500)
    expect(first.results.filter((r) => r !== null).map((r) => r?.code)).toEqual(['INVALID_MESSAGE'])
    expect(first.results[700]?.code).toBe('INVALID_MESSAGE')
    // Everything acked is stored.
    expect((await store.mapInfo('m'))?.count).toBe(1_500)
  })

  it('commits a one-change write from another connection after at most a few small transactions of a flood already under way', async () => {
    const { relay, store } = await relayWithStore()
    const { client: flooder } = await TestClient.connect(relay.url)
    const { client: honest } = await TestClient.connect(relay.url)
    stops.push(() => flooder.close(), () => honest.close())
    for (let f = 0; f < 5; f++) {
      flooder.send({ type: 'ops', id: f + 1, changes: Array.from({ length: 2_000 }, (_, i) => update(flooder.clock, 'm', `f${f}-${i}`, { i, pad: 'x'.repeat(32) })) })
    }
    // Once the flood is committing, the honest client writes to the same map.
    let head = 0
    for (let i = 0; i < 10_000 && head === 0; i++) {
      head = (await store.mapInfo('m'))?.head ?? 0
      if (head === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    }
    expect(head, 'the flood started committing').toBeGreaterThan(0)
    const before = head
    const ack = await honest.ops([update(honest.clock, 'm', 'honest', { n: 1 })])
    const after = (await store.mapInfo('m'))?.head ?? 0
    expect(ack.results).toEqual([null])
    const ahead = after - before - 1
    console.log(`[figure] flood changes committed between the honest write's send and its ack: ${ahead} (transactions of at most ${MAX_TRANSACTION_CHANGES})`)
    // Before the scheduler, a flood filled 1,000-change transactions and this was 1,000 or more.
    expect(ahead).toBeLessThan(1_000)
    expect(after).toBeLessThan(10_001)
    await flooder.next((m) => m.type === 'ack' && m.id === 5, 60_000)
    expect((await store.mapInfo('m'))?.count).toBe(10_001)
  })

  it('still refuses an over-rate batch with RATE_LIMITED and a retryAfterMs', async () => {
    const { relay } = await relayWithStore({ opsPerSecond: 10, opsBurst: 100 })
    const { client } = await TestClient.connect(relay.url)
    stops.push(() => client.close())
    const ok = await client.ops(Array.from({ length: 100 }, (_, i) => update(client.clock, 'm', `k${i}`, { i })))
    expect(ok.results.every((r) => r === null)).toBe(true)
    client.send({ type: 'ops', id: 99, changes: Array.from({ length: 100 }, (_, i) => update(client.clock, 'm', `k${i}`, { i })) })
    const refused = await client.waitAny((m) => (m.type === 'error' && m.ref === 99) || (m.type === 'ack' && m.id === 99))
    expect(refused.type).toBe('error')
    if (refused.type !== 'error') throw new Error('unreachable')
    expect(refused.error.code).toBe('RATE_LIMITED')
    expect(refused.error.details?.['retryAfterMs']).toBeGreaterThan(0)
  })
})
