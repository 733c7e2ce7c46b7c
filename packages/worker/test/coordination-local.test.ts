/**
 * Coordination primitives inside one browser, without a relay: two tabs (two comlink
 * ports on one engine, as a SharedWorker serves them) hear each other's topic messages
 * while offline, a tab never hears its own, and what needs the relay (locks, entry
 * processors) fails at once with a typed OfflineError instead of hanging.
 */
import * as Comlink from 'comlink'
import { afterEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../src/engine'
import type { EngineHostApi, TopicEvent } from '../src/engine-api'
import { exposeEngine } from '../src/expose'
import { freshIdb, unwrap, waitFor } from './helpers'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function tab(engine: Engine): Comlink.Remote<EngineHostApi> {
  const channel = new MessageChannel()
  exposeEngine(engine, channel.port1)
  const remote = Comlink.wrap<EngineHostApi>(channel.port2)
  cleanups.push(() => {
    remote[Comlink.releaseProxy]()
    channel.port1.close()
    channel.port2.close()
  })
  return remote
}

function engine(options: Partial<Parameters<typeof createEngine>[0]> = {}): Engine {
  const e = createEngine({ name: 'coord', mode: 'shared-worker', indexedDB: freshIdb(), ...options })
  cleanups.push(() => e.close())
  return e
}

describe('topics between tabs of one engine', () => {
  it('deliver to the other tab, in order, offline, and never back to the sender', async () => {
    const e = engine()
    const a = tab(e)
    const b = tab(e)
    const gotA: TopicEvent[] = []
    const gotB: TopicEvent[] = []
    let arrived: (() => void) | undefined
    unwrap(await a.subscribeTopic('room:1', 'tab-a', Comlink.proxy((ev: TopicEvent) => void gotA.push(ev))))
    unwrap(
      await b.subscribeTopic(
        'room:1',
        'tab-b',
        Comlink.proxy((ev: TopicEvent) => {
          gotB.push(ev)
          arrived?.()
        }),
      ),
    )

    const receipts = []
    for (let i = 0; i < 20; i++) receipts.push(unwrap(await a.publishTopic('room:1', 'tab-a', { n: i })))
    await waitFor('20 messages in tab b', () => gotB.length === 20, 5_000)
    expect(gotB.map((ev) => (ev.type === 'message' ? (ev.data as { n: number }).n : -1))).toEqual([...Array(20).keys()])
    expect(gotB.every((ev) => ev.type === 'message' && ev.local && ev.from === e.replicaId)).toBe(true)
    expect(receipts[0]).toEqual({ local: 1, remote: 'not-sent' })
    expect(gotA).toHaveLength(0)

    // Latency figure: publish in one tab → callback in the other, over two comlink hops.
    const samples: number[] = []
    for (let i = 0; i < 50; i++) {
      const delivered = new Promise<void>((resolve) => (arrived = resolve))
      const t0 = performance.now()
      void a.publishTopic('room:1', 'tab-a', i)
      await delivered
      samples.push(performance.now() - t0)
    }
    samples.sort((x, y) => x - y)
    console.log(`[topics] tab-to-tab latency over comlink: p50 ${samples[25]?.toFixed(2)} ms, p95 ${samples[47]?.toFixed(2)} ms (n=50)`)
  })

  it('an unsubscribed tab stops hearing the topic; other topics are separate', async () => {
    const e = engine()
    const a = tab(e)
    const b = tab(e)
    const got: unknown[] = []
    const id = unwrap(await b.subscribeTopic('t1', 'b', Comlink.proxy((ev: TopicEvent) => void got.push(ev.type === 'message' ? ev.data : ev.type))))
    expect(unwrap(await a.publishTopic('t2', 'a', 'other topic')).local).toBe(0)
    expect(unwrap(await a.publishTopic('t1', 'a', 'hello')).local).toBe(1)
    await waitFor('hello', () => got.length === 1)
    await b.unsubscribeTopic(id)
    expect(unwrap(await a.publishTopic('t1', 'a', 'gone')).local).toBe(0)
    expect(got).toEqual(['hello'])
  })

  it('rejects a message Outpost cannot send with a typed error', async () => {
    const e = engine()
    const result = await e.publishTopic('t', 'a', { when: undefined } as never)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error.code).toBe('INVALID_VALUE')
    const badName = await e.subscribeTopic('', 'a', () => {})
    expect(!badName.ok && badName.error.code).toBe('INVALID_KEY')
  })
})

describe('primitives that need the relay', () => {
  it('fail fast with OfflineError when there is no relay or the client is offline', async () => {
    for (const e of [engine(), engine({ url: 'ws://127.0.0.1:9', startOffline: true })]) {
      const started = Date.now()
      const lock = await e.acquireLock('invoice:9', 10_000, 5_000, () => {})
      const invoked = await e.invoke('stock', 'sku1', 'decrement', { by: 1 })
      const check = await e.checkLock('invoice:9', 1)
      for (const r of [lock, invoked, check]) {
        expect(r.ok).toBe(false)
        if (!r.ok) expect(r.error.code).toBe('OFFLINE')
      }
      expect(Date.now() - started).toBeLessThan(1_000)
      // Publishing still reaches local subscribers and says it was not sent.
      expect(unwrap(await e.publishTopic('t', 'a', 1))).toEqual({ local: 0, remote: 'not-sent' })
    }
  })

  it('validates lock arguments before asking anyone', async () => {
    const e = engine({ url: 'ws://127.0.0.1:9', startOffline: true })
    const r = await e.acquireLock('x', 5, 0, () => {})
    expect(!r.ok && r.error.code).toBe('INVALID_VALUE')
  })
})
