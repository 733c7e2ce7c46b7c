/**
 * The cluster scenario's oracles must be able to fail: given logs with a double grant, a
 * token that went down, a stale write the resource took, or a valid holder refused, the
 * audits report them; given a clean history, they report nothing.
 */
import { describe, expect, it } from 'vitest'
import type { RecordValue } from '@outpost/core'
import { auditGrants, type GrantRecord } from './lock-contention'
import { RecordingFence } from './recording-fence'
import { recordDifferences } from './cluster-clients'
import { failovers } from './failover'

const grant = (worker: string, token: number, seenAt: number, expiresAt: number, releasedAt?: number): GrantRecord => ({
  worker,
  token,
  seenAt,
  expiresAt,
  paused: false,
  ...(releasedAt === undefined ? {} : { releasedAt }),
})

describe('C1 audits', () => {
  it('find no fault in a clean grant history, expired and released leases alike', () => {
    const audit = auditGrants([grant('a', 1, 0, 1_500, 100), grant('b', 2, 120, 1_620), grant('c', 3, 1_700, 3_200, 1_800)])
    expect(audit).toEqual({ grants: 3, doubleGrants: [], nonIncreasing: [] })
  })

  it('report a grant seen before the previous lease was released or expired, and a token that did not increase', () => {
    const audit = auditGrants([grant('a', 5, 0, 1_500, 400), grant('b', 4, 300, 1_800)])
    expect(audit.doubleGrants).toHaveLength(1)
    expect(audit.nonIncreasing).toHaveLength(1)
  })

  it('a fence refuses stale tokens only, and its audit tells a refused valid holder (a double grant) from a refused stale one', () => {
    const fence = new RecordingFence()
    expect(fence.write(1, 'a', true)).toBe(true)
    expect(fence.write(2, 'b', true)).toBe(true)
    expect(fence.write(1, 'a', false)).toBe(false)
    expect(fence.write(1, 'a', true)).toBe(false)
    expect(fence.write(2, 'b', true)).toBe(true)
    const audit = fence.audit()
    expect(audit).toMatchObject({ attempts: 5, accepted: 3, stale: 2, staleAccepted: 0, freshRefused: 0, validRefused: 1, acceptedOutOfOrder: 0, tokenOrder: [1, 2] })
  })

  it('tell which keys differ between the store and a client', () => {
    const store = new Map<string, RecordValue>([['k1', { a: 1, b: 2 }], ['k2', { a: 1 }]])
    expect(recordDifferences(store, new Map<string, RecordValue>([['k1', { b: 2, a: 1 }], ['k2', { a: 1 }]]))).toEqual([])
    expect(recordDifferences(store, new Map<string, RecordValue>([['k1', { a: 1, b: 3 }], ['k3', { a: 1 }]]))).toHaveLength(3)
  })

  it('time a recovery from the kill, skip clients elsewhere or offline on purpose, and report one that never came back', () => {
    const urls = ['ws://r0', 'ws://r1']
    const kill = { at: 1_000, relay: 0, url: 'ws://r0', restartedAt: 3_000 }
    const live = (at: number, relayUrl?: string) => ({ at, connection: 'live' as const, relayUrl })
    const down = (at: number) => ({ at, connection: 'backing-off' as const, relayUrl: undefined })
    const recoveries = failovers(
      [kill],
      [
        { name: 'moved', home: 0, statuses: [live(0, 'ws://r0'), down(1_010), { at: 1_250, connection: 'syncing', relayUrl: 'ws://r1' }, live(1_400, 'ws://r1')], offlineIntervals: [] },
        { name: 'elsewhere', home: 1, statuses: [live(0, 'ws://r1')], offlineIntervals: [] },
        { name: 'offline', home: 0, statuses: [live(0), down(1_010), live(5_000)], offlineIntervals: [[1_200, 4_900]] },
        { name: 'stuck', home: 0, statuses: [live(0), down(1_010)], offlineIntervals: [] },
      ],
      urls,
    )
    expect(recoveries.map((r) => [r.client, r.connectedMs, r.ms, r.sameRelay])).toEqual([
      ['moved', 250, 400, false],
      ['stuck', undefined, undefined, undefined],
    ])
  })
})
