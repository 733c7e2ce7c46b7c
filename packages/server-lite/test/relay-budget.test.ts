/**
 * The relay-wide budget of queued work (`limits.maxQueuedBytes`, `relay-budget.ts`):
 * - unit: charges and releases per lane, engagement past the limit stops every lane holding
 *   work and any lane that queues while engaged, release at half the limit resumes them all;
 * - relay: many connections offer far more than a stalled store takes (each sends a
 *   seeded number of one-change `ops` frames without waiting). The relay-wide accounting stays
 *   under the limit plus what was already read from each socket when it stopped, no session
 *   is closed for silence while the relay stopped reading it (the heartbeat deadline is
 *   4 s and the relay holds them for 6 s), the engagement is counted in /metrics, and once the store moves every op is
 *   acknowledged (or refused with a typed code) and every acknowledged value is stored.
 */
import { MemoryStore, lwwView, type LwwRecordState, type WriteRequest } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { RelayBudget, FRAME_OVERHEAD_BYTES, type BudgetedLane } from '../src/relay-budget'
import { TestClient, startRelay } from './helpers/client'
import { update } from './helpers/changes'
import { between, prng, testSeed } from './helpers/seed'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

class FakeLane implements BudgetedLane {
  paused = false
  relayPause(paused: boolean): void {
    this.paused = paused
  }
}

describe('RelayBudget', () => {
  it('engages past the limit, stops the lanes adding to it, resumes them all at half', () => {
    const events: string[] = []
    const budget = new RelayBudget(1_000, { engaged: (total, paused) => events.push(`engaged ${total} ${paused}`), released: (total) => events.push(`released ${total}`) })
    const [a, b, c] = [new FakeLane(), new FakeLane(), new FakeLane()]
    budget.charge(a, 400)
    budget.charge(b, 400)
    expect([a.paused, b.paused, budget.engaged]).toEqual([false, false, false])
    budget.charge(a, 300)
    // Over: every lane holding work stops; c holds none yet.
    expect([a.paused, b.paused, c.paused, budget.engaged, budget.pausedLanes]).toEqual([true, true, false, true, 2])
    // A lane queuing while engaged stops as soon as its frame is in.
    budget.charge(c, 10)
    expect(c.paused).toBe(true)
    budget.release(a, 400)
    expect([budget.queuedBytes, budget.engaged]).toEqual([710, true])
    budget.release(b, 400)
    // 310 ≤ 500: released, every lane reads again.
    expect([a.paused, b.paused, c.paused, budget.engaged, budget.queuedBytes, budget.queuedFrames, budget.peakBytes]).toEqual([false, false, false, false, 310, 2, 1_110])
    expect(events).toEqual(['engaged 1100 2', 'released 310'])
  })

  it('does not resume a lane that closed while stopped', () => {
    const budget = new RelayBudget(100)
    const a = new FakeLane()
    budget.charge(a, 200)
    expect(a.paused).toBe(true)
    budget.forget(a)
    a.paused = true
    budget.release(a, 200)
    expect([a.paused, budget.queuedBytes, budget.pausedLanes]).toEqual([true, 0, 0])
  })

  it('charges each frame its overhead', () => {
    expect(RelayBudget.frameCost(10)).toBe(10 + FRAME_OVERHEAD_BYTES)
  })
})

describe('relay under overload (relay-wide budget)', () => {
  it('keeps queued work under limits.maxQueuedBytes from many connections, then acks every op', { timeout: 120_000 }, async () => {
    const seed = testSeed('relay-budget')
    const random = prng(seed)
    console.log(`[relay-budget] seed=${seed}`)
    const CONNECTIONS = 16
    const MAX_QUEUED = 1024 * 1024
    // A store that does not move until released: the relay is offered far more than it commits.
    const store = new MemoryStore()
    let open!: () => void
    const stalled = new Promise<void>((resolve) => (open = resolve))
    const applyWrites = store.applyWrites.bind(store)
    store.applyWrites = async (batch: readonly WriteRequest[]) => {
      await stalled
      return applyWrites(batch)
    }
    const { relay, stop } = await startRelay({ limits: { maxQueuedBytes: MAX_QUEUED, heartbeatMs: 2_000, maxConnectionsPerSubject: CONNECTIONS + 1, opsBurst: 100_000, subjectOpsBurst: 1_000_000 } }, { store })
    cleanups.push(stop)
    const clients: TestClient[] = []
    for (let i = 0; i < CONNECTIONS; i++) {
      const { client } = await TestClient.connect(relay.url, { perMessageDeflate: false })
      cleanups.push(() => client.close())
      clients.push(client)
    }
    const body = 'x'.repeat(1_000)
    const plans = clients.map(() => between(random, 300, 600))
    const sent: { key: string; v: number }[][] = []
    for (const [c, client] of clients.entries()) {
      sent.push(
        Array.from({ length: plans[c] as number }, (_, i) => {
          const key = `c${c}-k${between(random, 0, 9)}`
          client.send({ type: 'ops', id: i + 1, changes: [update(client.clock, 'm', key, { v: i + 1, body })] })
          return { key, v: i + 1 }
        }),
      )
      // The relay shares this event loop: let it read (and answer pings) between clients.
      await new Promise((resolve) => setImmediate(resolve))
    }
    const offered = sent.reduce((s, ops) => s + ops.length * RelayBudget.frameCost(1_100), 0)
    // Let the relay read until the budget holds everything back (or all was read, which would fail below).
    let peak = 0
    const budget = () => relay.metrics.registry.getSingleMetricAsString('outpost_queued_bytes')
    for (let i = 0; i < 120; i++) {
      await new Promise((r) => setTimeout(r, 50))
      const text = await budget()
      peak = Math.max(peak, Number(/outpost_queued_bytes (\d+)/.exec(text)?.[1] ?? 0))
    }
    const peakText = await relay.metrics.registry.getSingleMetricAsString('outpost_queued_bytes_peak')
    const peakBytes = Number(/outpost_queued_bytes_peak (\d+)/.exec(peakText)?.[1] ?? NaN)
    const engaged = Number(/ (\d+)$/m.exec(await relay.metrics.registry.getSingleMetricAsString('outpost_relay_budget_engaged_total'))?.[1] ?? 0)
    // What a stopped socket still delivers: the rest of the chunk being parsed (one read, ≤ 64 KiB).
    const perConnectionSlack = Math.ceil((64 * 1024) / 1_100 + 1) * RelayBudget.frameCost(1_100)
    console.log(`[relay-budget] offered ${offered} B charged; peak queued ${peakBytes} B (sampled ${peak}); limit ${MAX_QUEUED} + slack ${CONNECTIONS} × ${perConnectionSlack}; engaged ${engaged}×`)
    expect(offered).toBeGreaterThan(4 * (MAX_QUEUED + CONNECTIONS * perConnectionSlack))
    expect(engaged).toBeGreaterThanOrEqual(1)
    expect(peakBytes).toBeLessThanOrEqual(MAX_QUEUED + CONNECTIONS * perConnectionSlack)
    // Stopped for 6 s with a 4 s heartbeat deadline: none was closed for silence.
    expect(clients.map((c) => c.ws.readyState)).toEqual(clients.map(() => 1))

    open()
    const results = await Promise.all(
      clients.map(async (client, c) => {
        const ops = sent[c] as { key: string; v: number }[]
        const outcome: string[] = []
        for (let id = 1; id <= ops.length; id++) {
          const reply = await client.waitAny((m) => (m.type === 'ack' && m.id === id) || (m.type === 'error' && m.ref === id), 60_000)
          outcome.push(reply.type === 'ack' ? (reply.results[0] === null ? 'ok' : `refused ${reply.results[0]?.code}`) : `error ${reply.type === 'error' ? reply.error.code : '?'}`)
        }
        return outcome
      }),
    )
    const untyped = results.flat().filter((r) => r !== 'ok' && !/RATE_LIMITED/.test(r))
    expect(untyped).toEqual([])
    // Nothing acked lost: each key holds the last value acknowledged for it (one writer per key, values grow).
    const lost: string[] = []
    for (const [c, ops] of sent.entries()) {
      const last = new Map<string, number>()
      ops.forEach((op, i) => {
        if (results[c]?.[i] === 'ok') last.set(op.key, op.v)
      })
      for (const [key, v] of last) {
        const [record] = await store.getRecords('m', [key])
        const view = record === undefined ? undefined : lwwView(record.state as LwwRecordState)
        if (view?.['v'] !== v) lost.push(`${key}: acked ${v}, stored ${JSON.stringify(view?.['v'])}`)
      }
    }
    expect(lost).toEqual([])
    expect(clients.map((c) => c.ws.readyState)).toEqual(clients.map(() => 1))
  })
})
