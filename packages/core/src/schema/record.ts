/**
 * What a map's schema guarantees about a stored record, checked the same way wherever a
 * record is produced: the visible record after a write is merged (relay), the record a
 * local write would produce (SDK). A deleted record needs nothing; a live one is upgraded
 * to the schema's version if it is older, and the result must validate.
 */
import { MAX_COUNTER, decodeStamp, encodeStamp } from '../clock/hlc'
import { lwwMaxStamp, lwwSetState, lwwUpdateState } from '../crdt/lww-record'
import type { LwwRecordState, RecordValue, ReplicaId, Stamp } from '../types'
import { valuesEqual } from '../value'
import { migrateRecord } from './migrate'
import type { MapSchema } from './types'
import { validateSync, withoutVersionField } from './validate'

/** The verdict on one record: when the record had to be upgraded, the upgraded record. */
export interface RecordVerdict {
  /** The record at the schema's version, when it was older (the caller stores the upgrade). */
  readonly upgraded: RecordValue | undefined
}

/**
 * Checks `view` (the visible record, `undefined` when deleted) against `map`, synchronously:
 * upgrades it when older, then validates it without its version field. Throws
 * `SchemaValidationError` naming the failing path.
 */
export function checkRecord(map: MapSchema, view: RecordValue | undefined, where: string): RecordVerdict {
  if (view === undefined) return { upgraded: undefined }
  const { record, changed } = migrateRecord(map, view, where)
  validateSync(map.schema, withoutVersionField(record), where)
  return { upgraded: changed ? record : undefined }
}

/**
 * The LWW delta that turns the visible record `from` into `to`, stamped by `tick`: changed
 * and new fields at one stamp; when `to` drops a field, a set (tombstone, then every field
 * of `to`), since a single field cannot be removed otherwise. Undefined when they are equal.
 */
export function upgradeDelta(from: RecordValue, to: RecordValue, tick: () => Stamp): LwwRecordState | undefined {
  const dropped = Object.keys(from).some((name) => !Object.hasOwn(to, name))
  if (dropped) {
    const deleted = tick()
    return lwwSetState(to, deleted, tick())
  }
  const patch: Record<string, unknown> = {}
  let any = false
  for (const [name, value] of Object.entries(to)) {
    if (Object.hasOwn(from, name) && valuesEqual(from[name] as never, value as never)) continue
    Object.defineProperty(patch, name, { value, enumerable: true, writable: true, configurable: true })
    any = true
  }
  return any ? lwwUpdateState(patch as RecordValue, tick()) : undefined
}

/**
 * Stamps for the upgrade of `state` by `replica`: each just above the previous one,
 * starting just above the newest stamp in `state` (same wall time, next counters). An
 * upgrade so stamped wins over the writes it upgrades and over nothing later: a write
 * made after them (a later wall time) still wins over the upgrade, so upgrading never
 * takes an edit away.
 */
export function stampsAfter(state: LwwRecordState, replica: ReplicaId): () => Stamp {
  const newest = lwwMaxStamp(state)
  let { wall, counter } = newest === null ? { wall: 0, counter: 0 } : decodeStamp(newest)
  return () => {
    if (counter >= MAX_COUNTER) {
      wall++
      counter = 0
    } else {
      counter++
    }
    return encodeStamp({ wall, counter, replica })
  }
}
