/**
 * How the relay's write queue forms store transactions (`SyncService.write`), observed on
 * the real in-memory store: at most MAX_TRANSACTION_CHANGES changes each, smallest batches
 * first, a small batch never made to wait for the commit of one many times its size, and
 * small batches still grouped (group commit).
 */
import { Hlc, MemoryStore, lwwUpdateState, type ReplicaId, type WriteRequest } from '@outpost/core'
import { describe, expect, it } from 'vitest'
import { createLogger } from '../src/logger'
import { createMetrics } from '../src/metrics'
import { MAX_TRANSACTION_CHANGES, SyncService } from '../src/sync/sync-service'
import type { PipelineRequest } from '../src/sync/write-pipeline'

const clock = new Hlc({ replicaId: 'writer' as ReplicaId })

function requests(prefix: string, count: number): PipelineRequest[] {
  return Array.from({ length: count }, (_, i) => {
    const state = lwwUpdateState({ i }, clock.tick())
    return { map: 'm', kind: 'lww', key: `${prefix}${i}`, decide: () => ({ state }), writerUpToDate: () => true }
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
})
