/**
 * Relays over one Postgres talking through each bus (Postgres LISTEN/NOTIFY, Redis
 * Streams), with the store poll turned off so only the bus can carry what happens: a
 * change committed through one relay reaches another relay's subscriber (its latency is
 * printed), topic messages reach subscribers on every other relay in the publisher's
 * order, a lock released on one relay is granted to a waiter on another at once (not at
 * the lease's expiry), and `/readyz` reports the store and the bus.
 */
import type { ChangesMessage, TopicMessage } from '@outpost/core'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'
import { POSTGRES_URL, dropSchemas, freshSchema, postgresMissing } from './helpers/postgres'
import { acquire, expectType, percentile, release } from './helpers/primitives'
import { REDIS_URL, redisMissing } from './helpers/redis'

const postgres = await postgresMissing()
const redis = postgres === undefined ? await redisMissing() : 'no Postgres'
const schemas: string[] = []
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  if (postgres === undefined) await dropSchemas(schemas)
})

async function connect(url: string) {
  const { client } = await TestClient.connect(url)
  cleanups.push(() => client.close())
  return client
}

const BUSES = [
  { name: 'postgres', bus: 'postgres', missing: postgres },
  { name: 'redis', bus: REDIS_URL, missing: postgres ?? redis },
] as const

for (const { name, bus, missing } of BUSES) {
  describe.skipIf(missing !== undefined)(`relays over one Postgres, ${name} bus, no polling`, () => {
    async function relays(n: number) {
      const schema = freshSchema('sb')
      schemas.push(schema)
      const out: { url: string; httpUrl: string }[] = []
      for (let i = 0; i < n; i++) {
        const started = await startRelay({ store: POSTGRES_URL, storeSchema: schema, bus, pollMs: 0, replicaId: `relay-${i}` })
        cleanups.push(started.stop)
        out.push({ url: started.relay.url, httpUrl: started.relay.httpUrl })
      }
      return out
    }

    it('delivers a change committed through one relay to a subscriber of another', async () => {
      const [r1, r2] = await relays(2)
      const reader = await connect((r1 as { url: string }).url)
      reader.send({ type: 'subscribe', sub: 1, shape: { map: 'docs' } })
      await reader.waitAny((m) => m.type === 'synced' && m.sub === 1)
      const writer = await connect((r2 as { url: string }).url)
      const latencies: number[] = []
      for (let i = 0; i < 20; i++) {
        const started = performance.now()
        await writer.ops([update(writer.clock, 'docs', `d${i}`, { i })])
        await reader.waitAny((m) => m.type === 'changes' && m.sub === 1 && m.changes.some((c) => c.key === `d${i}`), 10_000)
        latencies.push(performance.now() - started)
      }
      const keys = new Set(reader.all<ChangesMessage>((m) => m.type === 'changes').flatMap((m) => m.changes.map((c) => c.key)))
      expect(keys.size).toBe(20)
      console.log(`[${name} bus] cross-relay write → subscriber: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms (20 writes, one at a time)`)
    })

    it('relays topic messages to subscribers on every other relay in the publisher order', async () => {
      const [r1, r2, r3] = await relays(3)
      const publisher = await connect((r1 as { url: string }).url)
      const receivers = [await connect((r2 as { url: string }).url), await connect((r3 as { url: string }).url), await connect((r1 as { url: string }).url)]
      for (const receiver of receivers) receiver.send({ type: 'topic-sub', topic: 'room:9' })
      // A subscription is in place once a probe published after it arrives (the bus delivers what is published after it listens).
      for (let probe = 0; ; probe++) {
        publisher.send({ type: 'topic-pub', id: 10_000 + probe, topic: 'room:9', data: { probe } })
        await new Promise((resolve) => setTimeout(resolve, 100))
        if (receivers.every((r) => r.all((m) => m.type === 'topic-msg').length > 0)) break
        expect(probe).toBeLessThan(50)
      }
      const count = 200
      for (let i = 0; i < count; i++) publisher.send({ type: 'topic-pub', id: i + 1, topic: 'room:9', data: { i } })
      for (const receiver of receivers) {
        await receiver.waitAny(() => receiver.all<TopicMessage>((m) => m.type === 'topic-msg' && typeof (m.data as { i?: number }).i === 'number').length >= count, 15_000)
        const got = receiver.all<TopicMessage>((m) => m.type === 'topic-msg' && typeof (m.data as { i?: number }).i === 'number')
        expect(got.map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: count }, (_, i) => i))
        const seqs = receiver.all<TopicMessage>((m) => m.type === 'topic-msg').map((m) => m.seq)
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
        expect(got.every((m) => m.from === publisher.replicaId)).toBe(true)
      }
    })

    it('grants a lock released on one relay to a waiter on another at once, not at the lease expiry', async () => {
      const [r1, r2] = await relays(2)
      const holder = await connect((r1 as { url: string }).url)
      const waiter = await connect((r2 as { url: string }).url)
      const held = expectType(await acquire(holder, 'door', 30_000, 0), 'lock-granted')
      const waiting = acquire(waiter, 'door', 30_000, 20_000)
      await new Promise((resolve) => setTimeout(resolve, 300))
      const released = performance.now()
      expectType(await release(holder, 'door', held.token), 'lock-released')
      const granted = expectType(await waiting, 'lock-granted')
      expect(granted.token).toBeGreaterThan(held.token)
      expect(performance.now() - released).toBeLessThan(10_000)
    })

    it('reports the store and the bus in /readyz', async () => {
      const [r1] = await relays(1)
      const response = await fetch(`${(r1 as { httpUrl: string }).httpUrl}/readyz`)
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({ status: 'ready', store: { name: 'postgres', healthy: true }, bus: { name, connected: true, state: 'connected' } })
      const metrics = await (await fetch(`${(r1 as { httpUrl: string }).httpUrl}/metrics`)).text()
      expect(metrics).toMatch(/^outpost_bus_connected 1$/m)
    })
  })
}
