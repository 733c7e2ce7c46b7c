/**
 * How the relay's write queue forms store transactions (`SyncService.write`), observed on
 * the real in-memory store: at most MAX_TRANSACTION_CHANGES changes each, smallest batches
 * first, a small batch never made to wait for the commit of one many times its size, and
 * small batches still grouped (group commit). Then pipelining, on LMDB (transactions share
 * a commit) and on the memory store declared pipelined with commits that settle out of order
 * (publication and resolution still follow transaction order; a cut batch has one part in flight).
 */
import { Hlc, MemoryStore, lwwUpdateState, type MapHint, type ReplicaId, type WriteOutcome, type WriteRequest } from '@outpost/core'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogger } from '../src/logger'
import { createMetrics } from '../src/metrics'
import { LmdbStore } from '../src/store/lmdb-store'
import { MAX_PIPELINED_CHANGES, MAX_TRANSACTION_CHANGES, SyncService } from '../src/sync/sync-service'
import type { PipelineRequest } from '../src/sync/write-pipeline'
import { tempDir } from './helpers/client'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const clock = new Hlc({ replicaId: 'writer' as ReplicaId })

function requests(prefix: string, count: number): PipelineRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const state = lwwUpdateState({ i }, clock.tick())
    return { map: 'm', kind: 'lww', key: `${prefix}${i}`, decide: () => ({ state }), writerUpToDate: () => true }
  })
}

function requestsIn(map: string, prefix: string, count: number): PipelineRequest[] {
  return requests(prefix, count).map((request) => ({ ...request, map }))
}

/**
 * A memory store declared pipelined whose commits settle after `delay(call)` ms (the data is
 * applied at once, in call order, as LMDB's writer does): lets commits settle out of order.
 * `fail(call)` makes that call's commit fail (nothing of it written).
 */
function pipelinedMemory(delay: (call: number) => number, fail: (call: number) => boolean = () => false) {
  const store = Object.assign(new MemoryStore(), { pipelinedWrites: true })
  const calls: string[][] = []
  const applyWrites = store.applyWrites.bind(store)
  store.applyWrites = (batch: readonly WriteRequest[]) => {
    const call = calls.length
    calls.push(batch.map((r) => `${r.map}/${r.key}`))
    const failed = fail(call)
    const applied = failed ? undefined : applyWrites(batch)
    return new Promise<WriteOutcome[]>((resolve, reject) => {
      setTimeout(() => (applied === undefined ? reject(new Error(`commit ${call} failed`)) : applied.then(resolve, reject)), delay(call))
    })
  }
  const hints: MapHint[][] = []
  const sync = new SyncService(store, createMetrics(), createLogger('silent'), { changeLogEntries: 1_000, onCommitted: (h) => hints.push([...h]) })
  return { store, sync, calls, hints }
}

function seqs(outcomes: readonly WriteOutcome[]): number[] {
  return outcomes.map((outcome) => {
    if (outcome.status !== 'applied') throw new Error(`expected applied, got ${outcome.status}`)
    return outcome.seq
  })
}

/** A sync service over a memory store that records the keys of each transaction. */
function observed(maxTransactionChanges?: number) {
  const store = new MemoryStore()
  const transactions: string[][] = []
  const applyWrites = store.applyWrites.bind(store)
  store.applyWrites = (batch: readonly WriteRequest[]) => {
    transactions.push(batch.map((r) => r.key))
    return applyWrites(batch)
  }
  const sync = new SyncService(store, createMetrics(), createLogger('silent'), { changeLogEntries: 1_000, ...(maxTransactionChanges === undefined ? {} : { maxTransactionChanges }) })
  return { sync, transactions }
}

describe('write queue', () => {
  it('commits a one-change write on its own rather than with a large batch queued beside it', async () => {
    const { sync, transactions } = observed()
    const origin = {}
    await Promise.all([sync.write(requests('big', MAX_TRANSACTION_CHANGES), origin), sync.write(requests('small', 1), origin)])
    expect(transactions.map((t) => t.length)).toEqual([1, MAX_TRANSACTION_CHANGES])
    expect(transactions[0]).toEqual(['small0'])
  })

  it('groups small writes of one turn in one transaction and cuts a large batch into transactions of at most MAX_TRANSACTION_CHANGES', async () => {
    const { sync, transactions } = observed()
    const writes = [sync.write(requests('a', 1), {}), sync.write(requests('b', 2), {}), sync.write(requests('c', 3), {}), sync.write(requests('big', 3 * MAX_TRANSACTION_CHANGES + 5), {})]
    const outcomes = await Promise.all(writes)
    expect(transactions[0]).toEqual(['a0', 'b0', 'b1', 'c0', 'c1', 'c2'])
    expect(transactions.slice(1).map((t) => t.length)).toEqual([MAX_TRANSACTION_CHANGES, MAX_TRANSACTION_CHANGES, MAX_TRANSACTION_CHANGES, 5])
    expect(outcomes.map((o) => o.length)).toEqual([1, 2, 3, 3 * MAX_TRANSACTION_CHANGES + 5])
    expect(outcomes.flat().every((o) => o.status === 'applied')).toBe(true)
  })

  it('takes at most limits.maxTransactionChanges per transaction when configured', async () => {
    const { sync, transactions } = observed(8)
    await sync.write(requests('k', 20), {})
    expect(transactions.map((t) => t.length)).toEqual([8, 8, 4])
  })

  it('keeps several transactions in flight on LMDB, so they share commits, with sequence numbers in transaction order', async () => {
    const dir = tempDir('outpost-wq-')
    const store = LmdbStore.open({ path: dir.path })
    cleanups.push(() => dir.remove(), () => store.close())
    let inFlight = 0
    let most = 0
    const applyWrites = store.applyWrites.bind(store)
    store.applyWrites = (batch: readonly WriteRequest[]) => {
      most = Math.max(most, ++inFlight)
      return applyWrites(batch).finally(() => inFlight--)
    }
    const sync = new SyncService(store, createMetrics(), createLogger('silent'), { changeLogEntries: 100_000 })
    await sync.catalog.get('m')
    const batches = Array.from({ length: 24 }, (_, b) => sync.write(requests(`b${b}-`, MAX_TRANSACTION_CHANGES), {}))
    const outcomes = await Promise.all(batches)
    console.log(`[figure] LMDB transactions in flight at once: at most ${most}`)
    // One transaction at a time would make every 64 changes wait for an fsync of their own.
    expect(most).toBeGreaterThan(1)
    expect(most).toBeLessThanOrEqual(MAX_PIPELINED_CHANGES / MAX_TRANSACTION_CHANGES)
    // Equal sizes are taken in arrival order: their sequence numbers follow.
    const all = outcomes.flatMap(seqs)
    expect(all).toEqual(Array.from({ length: 24 * MAX_TRANSACTION_CHANGES }, (_, i) => i + 1))
    expect((await store.mapInfo('m'))?.head).toBe(24 * MAX_TRANSACTION_CHANGES)
  })

  it('publishes and resolves transactions in the order they started when their commits settle out of order', async () => {
    // Each commit takes less time than the one before: without ordering, later ones settle first.
    const { sync, hints } = pipelinedMemory((call) => Math.max(0, 40 - 8 * call))
    await sync.catalog.get('m')
    const resolved: number[] = []
    const writes = Array.from({ length: 5 }, (_, b) =>
      sync.write(requests(`b${b}-`, MAX_TRANSACTION_CHANGES), {}).then((outcomes) => {
        resolved.push(b)
        return outcomes
      }),
    )
    const outcomes = await Promise.all(writes)
    expect(resolved).toEqual([0, 1, 2, 3, 4])
    expect(outcomes.map((o) => seqs(o)[0])).toEqual([1, 65, 129, 193, 257])
    // The catalog and the bus hear of heads in commit order.
    expect(hints.map((h) => h.find((hint) => hint.map === 'm')?.seq)).toEqual([64, 128, 192, 256, 320])
    expect(sync.catalog.peek('m')?.head).toBe(320)
  })

  it('hands transactions to the store in queue order when an earlier one must load its map first', async () => {
    const { store, sync, calls } = pipelinedMemory(() => 5)
    await sync.catalog.get('loaded')
    // Reading a map's bookkeeping takes a while (as a disk or network read may).
    const mapInfo = store.mapInfo.bind(store)
    store.mapInfo = async (map: string) => {
      await new Promise((resolve) => setTimeout(resolve, 30))
      return mapInfo(map)
    }
    // 'cold' is not in memory: its transaction waits for the map's bookkeeping; the next one must not overtake it.
    const first = sync.write(requestsIn('cold', 'c', 1), {})
    await new Promise((resolve) => setImmediate(resolve))
    const second = sync.write(requestsIn('loaded', 'l', 1), {})
    await Promise.all([first, second])
    expect(calls).toEqual([['cold/c0'], ['loaded/l0']])
  })

  it('never runs the rest of a batch cut across transactions after a part of it failed', async () => {
    // The first commit fails; pipelining must not have started the batch's second part meanwhile.
    const { sync, calls } = pipelinedMemory(() => 20, (call) => call === 0)
    await sync.catalog.get('m')
    const big = sync.write(requests('big', 3 * MAX_TRANSACTION_CHANGES), {})
    await expect(big).rejects.toThrow('commit 0 failed')
    expect(calls).toHaveLength(1)
    // Other writes go on.
    const [outcome] = await sync.write(requests('later', 1), {})
    expect(outcome?.status).toBe('applied')
  })

  it('starts a small write at once when the pipeline window is full, so it joins the next commit', async () => {
    const { store, sync, calls } = pipelinedMemory(() => 0)
    await sync.catalog.get('m')
    // Commits settle only when the test opens the gate: "before any commit settled" holds by
    // construction, not because the machine was quick enough to beat a timer.
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    let settled = 0
    const applyWrites = store.applyWrites.bind(store)
    const settledAtCall: number[] = []
    store.applyWrites = (batch: readonly WriteRequest[]) => {
      settledAtCall.push(settled)
      return applyWrites(batch)
        .then(async (outcomes) => {
          await gate
          return outcomes
        })
        .finally(() => settled++)
    }
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
    }
    const window = MAX_PIPELINED_CHANGES / MAX_TRANSACTION_CHANGES
    const flood = Array.from({ length: window + 4 }, (_, b) => sync.write(requests(`f${b}-`, MAX_TRANSACTION_CHANGES), {}))
    // The flood fills the window (one transaction per turn) and no more while nothing settles.
    await turns(window + 20)
    expect(calls).toHaveLength(window)
    const small = sync.write(requests('small', 1), {})
    await turns(20)
    // The small write did not wait for a commit of the full window to settle: its own transaction is in flight.
    const at = calls.findIndex((keys) => keys.includes('m/small0'))
    expect(at, 'the small write started while the window was full').toBe(window)
    expect(calls[at]).toEqual(['m/small0'])
    expect(settledAtCall[at], 'commits settled before the small write started').toBe(0)
    expect(settled).toBe(0)
    open()
    await Promise.all([...flood, small])
    // A flood batch is never cut into small pieces to slip in the same way.
    expect(calls.filter((keys) => keys.length !== 1).every((keys) => keys.length === MAX_TRANSACTION_CHANGES)).toBe(true)
    expect(calls.flat()).toHaveLength((window + 4) * MAX_TRANSACTION_CHANGES + 1)
  })

  it('keeps one large transaction in flight while small writes come in, the whole window otherwise', async () => {
    const { store, sync } = pipelinedMemory(() => 0)
    await sync.catalog.get('m')
    // Commits settle only when the test opens the gate, so what is in flight is counted without timing.
    let open!: () => void
    let gate = new Promise<void>((resolve) => (open = resolve))
    let inFlight = 0
    const applyWrites = store.applyWrites.bind(store)
    store.applyWrites = (batch: readonly WriteRequest[]) => {
      inFlight++
      const held = gate
      return applyWrites(batch).then(async (outcomes) => {
        await held
        inFlight--
        return outcomes
      })
    }
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
    }
    const bulk = (tag: string) => Array.from({ length: 10 }, (_, b) => sync.write(requests(`${tag}${b}-`, MAX_TRANSACTION_CHANGES), {}))
    const first = bulk('a')
    await turns(20)
    expect(inFlight, 'bulk only: the whole window').toBe(MAX_PIPELINED_CHANGES / MAX_TRANSACTION_CHANGES)
    open()
    await Promise.all(first)
    gate = new Promise<void>((resolve) => (open = resolve))
    const second = [sync.write(requests('small', 1), {}), ...bulk('b')]
    await turns(20)
    // The small write's transaction and one large one.
    expect(inFlight).toBe(2)
    open()
    await Promise.all(second)
  })
})
