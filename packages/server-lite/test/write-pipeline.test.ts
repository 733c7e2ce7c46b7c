/**
 * The write pipeline checks what needs no stored data once, when the request is built
 * (before any store transaction), and only the forgery rule inside the transaction
 * (`write-pipeline.ts`, `validate-change.ts`): a malformed change or a stamp too far ahead
 * never reaches the store, and a register of another replica is still judged against the
 * stored record. Run against core's MemoryStore (which passes the same store acceptance
 * suite as LMDB and Postgres).
 */
import { ClockDriftError, ForbiddenError, Hlc, InvalidValueError, MemoryStore, lwwUpdateState, type Change, type ReplicaId, type WriteRequest } from '@outpost/core'
import { describe, expect, it } from 'vitest'
import type { MapAccess } from '../src/auth/rules'
import { writeRequest, type PipelineContext } from '../src/sync/write-pipeline'

const FULL: MapAccess = { read: true, write: true, filter: undefined, visible: () => true, keyAllowed: () => true }
const NOW = 1_750_000_000_000

function setup() {
  const relay = new Hlc({ replicaId: 'relay' as ReplicaId, now: () => NOW })
  const pipeline: PipelineContext = { clock: relay, limits: { maxFrameBytes: 1 << 20, maxElements: 100_000 }, filterFields: () => undefined, resolution: () => undefined }
  const store = new MemoryStore()
  return { pipeline, apply: (requests: readonly WriteRequest[]) => store.applyWrites(requests) }
}

const writer = (replicaId: string) => ({ replicaId, access: () => FULL })

describe('write pipeline: validation once, at the boundary', () => {
  it('refuses a malformed value when the request is built, before any store transaction', () => {
    const { pipeline } = setup()
    const clock = new Hlc({ replicaId: 'a' as ReplicaId, now: () => NOW })
    const change = { kind: 'lww', map: 'm', key: 'k', state: { fields: [['n', Number.NaN, clock.tick()]], deleted: null } } as unknown as Change
    expect(() => writeRequest(change, writer('a'), undefined, pipeline)).toThrow(InvalidValueError)
  })

  it('refuses a stamp too far ahead of the relay clock when the request is built', () => {
    const { pipeline } = setup()
    const ahead = new Hlc({ replicaId: 'a' as ReplicaId, now: () => NOW + 10 * 60_000 })
    const change: Change = { kind: 'lww', map: 'm', key: 'k', state: lwwUpdateState({ n: 1 }, ahead.tick()) }
    expect(() => writeRequest(change, writer('a'), undefined, pipeline)).toThrow(ClockDriftError)
  })

  it('still judges another replica\'s register against the stored record, inside the transaction', async () => {
    const { pipeline, apply } = setup()
    const b = new Hlc({ replicaId: 'b' as ReplicaId, now: () => NOW })
    const fromB: Change = { kind: 'lww', map: 'm', key: 'k', state: lwwUpdateState({ n: 1, m: 'x' }, b.tick()) }
    // Replica a replays b's write before the relay has it: forged.
    const [forged] = await apply([writeRequest(fromB, writer('a'), undefined, pipeline)])
    expect(forged?.status).toBe('refused')
    expect(forged?.status === 'refused' ? forged.error : undefined).toBeInstanceOf(ForbiddenError)
    // Once b wrote it, a may replay it (a no-op), and a register it holds is not forged.
    const [own] = await apply([writeRequest(fromB, writer('b'), undefined, pipeline)])
    expect(own?.status).toBe('applied')
    const [replayed] = await apply([writeRequest(fromB, writer('a'), 'lww', pipeline)])
    expect(replayed?.status).toBe('unchanged')
  })
})
