/** Builders of LWW changes stamped by a test client's clock. */
import { lwwDeleteState, lwwSetState, lwwUpdateState, type Change, type Hlc, type LwwRecordState, type RecordValue } from '@outpost/core'

/** `update(patch)` of `map/key`. */
export function update(clock: Hlc, map: string, key: string, patch: RecordValue): Change & { kind: 'lww'; state: LwwRecordState } {
  return { kind: 'lww', map, key, state: lwwUpdateState(patch, clock.tick()) }
}

/** `set(record)` of `map/key` (replaces every field). */
export function set(clock: Hlc, map: string, key: string, record: RecordValue): Change & { kind: 'lww'; state: LwwRecordState } {
  const deleteStamp = clock.tick()
  return { kind: 'lww', map, key, state: lwwSetState(record, deleteStamp, clock.tick()) }
}

/** `delete()` of `map/key`. */
export function remove(clock: Hlc, map: string, key: string): Change & { kind: 'lww'; state: LwwRecordState } {
  return { kind: 'lww', map, key, state: lwwDeleteState(clock.tick()) }
}
