/**
 * The record operations behind the facade's write and read calls: each loads its map,
 * then makes the write's delta from the key's current state (in memory, optimistic
 * writes included) and queues it to the committer. Arguments arrive already checked by
 * the facade's guard (the method's row of `ENGINE_METHODS`).
 */
import {
  COUNTERS_MAP,
  counterAddState,
  lwwDeleteState,
  lwwSetState,
  lwwUpdateState,
  lwwView,
  orAddState,
  orRemoveState,
  type CounterState,
  type LwwRecordState,
  type OrSetState,
  type RecordValue,
} from '@outpost/core'
import type { EngineApi, WriteReceipt } from '../engine-api'
import type { EngineMethodName } from '../engine-methods'
import type { Parts } from './parts'

/** The arguments of engine method `K`. */
export type Args<K extends EngineMethodName> = Parameters<EngineApi[K]>

export async function set({ maps, hlc, committer }: Parts, [map, key, record, callId]: Args<'set'>): Promise<WriteReceipt> {
  await maps.ensure('lww', map)
  return committer.write({ kind: 'lww', map, key, makeDelta: () => lwwSetState(record, hlc.tick(), hlc.tick()) }, callId)
}

export async function update({ maps, hlc, committer }: Parts, [map, key, patch, callId]: Args<'update'>): Promise<WriteReceipt> {
  await maps.ensure('lww', map)
  return committer.write({ kind: 'lww', map, key, makeDelta: () => lwwUpdateState(patch, hlc.tick()) }, callId)
}

export async function remove({ maps, hlc, committer }: Parts, [map, key, callId]: Args<'delete'>): Promise<WriteReceipt> {
  await maps.ensure('lww', map)
  return committer.write({ kind: 'lww', map, key, makeDelta: () => lwwDeleteState(hlc.tick()) }, callId)
}

export async function get({ maps }: Parts, [map, key]: Args<'get'>): Promise<RecordValue | undefined> {
  const loaded = await maps.ensure('lww', map)
  const state = loaded.states.get(key)
  return state === undefined ? undefined : lwwView(state as LwwRecordState)
}

export async function orAdd({ maps, hlc, committer }: Parts, [map, key, value, callId]: Args<'orAdd'>): Promise<WriteReceipt> {
  await maps.ensure('or', map)
  return committer.write({ kind: 'or', map, key, makeDelta: () => orAddState(value, hlc.tick()) }, callId)
}

export async function orRemove({ maps, committer }: Parts, [map, key, value, callId]: Args<'orRemove'>): Promise<WriteReceipt> {
  await maps.ensure('or', map)
  return committer.write({ kind: 'or', map, key, makeDelta: (current) => orRemoveState((current as OrSetState | undefined) ?? { adds: [], removes: [] }, value) }, callId)
}

export async function counterAdd({ maps, shapes, committer, replicaId }: Parts, [name, delta, callId]: Args<'counterAdd'>): Promise<WriteReceipt> {
  await maps.ensure('counter', COUNTERS_MAP)
  // The counter's own check of `delta`, now, so a bad delta is a typed error before anything is queued.
  counterAddState([], replicaId, delta)
  await shapes.replicateCounters()
  return committer.write({ kind: 'counter', map: COUNTERS_MAP, key: name, makeDelta: (current) => counterAddState((current as CounterState | undefined) ?? [], replicaId, delta) }, callId)
}
