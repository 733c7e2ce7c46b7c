/**
 * LWW records: each top-level field is its own last-writer-wins register, and a delete is a
 * record-level tombstone stamp. A field whose stamp is not newer than the tombstone is dead;
 * a field written after the tombstone revives the record with that field only.
 *
 * Dead fields stay in the state: the relay reads their last values to decide who may see a
 * tombstone (a delete is visible to whoever could see the record). Whole records are dropped
 * later by the tombstone-horizon GC, never field by field.
 *
 * The `lww*State` builders return *deltas*: states holding only what one write changed.
 * Merging a delta into the current state applies the write; merging it twice changes nothing.
 */
import { InvalidValueError } from '../errors'
import type { FieldEntry, LwwRecordState, RecordValue, Stamp, Value } from '../types'
import { VALUE_LIMITS, assertRecord, compareValues, getField, recordFromEntries, setOwnField, valueWeight, valuesEqual } from '../value'

const EMPTY: LwwRecordState = Object.freeze({ fields: Object.freeze([]) as readonly FieldEntry[], deleted: null })

/** The state of a key nobody wrote: no fields, no tombstone. */
export function emptyLww(): LwwRecordState {
  return EMPTY
}

function byName(a: FieldEntry, b: FieldEntry): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

/** True for values a dead register does not keep (see {@link mergeLww}). */
function heavy(value: Value): boolean {
  return valueWeight(value, VALUE_LIMITS.deadValueWeight) > VALUE_LIMITS.deadValueWeight
}

/**
 * Orders two values of one stamp (inconsistent input: one stamp is one write): heavy
 * values and `null` above light ones, `null` above heavy ones, else the value order. A
 * dead heavy value becomes `null` and so keeps its rank, which keeps merge associative.
 */
function compareTied(a: Value, b: Value): number {
  const ca = a === null || heavy(a) ? 1 : 0
  const cb = b === null || heavy(b) ? 1 : 0
  if (ca !== cb) return ca - cb
  if (ca === 1 && (a === null) !== (b === null)) return a === null ? 1 : -1
  return compareValues(a, b)
}

/** Of two registers of one field, the one that wins; ties on the stamp fall back to {@link compareTied} so merging stays a join even on inconsistent input. */
function winner(a: FieldEntry, b: FieldEntry): FieldEntry {
  if (a[2] !== b[2]) return a[2] < b[2] ? b : a
  if (a[1] === b[1]) return a
  return compareTied(a[1], b[1]) < 0 ? b : a
}

/**
 * Merges two states of one record: per field the register with the greater stamp (the same
 * stamp is the same write), and the greater tombstone. Fields come out sorted by name, so
 * equal contents give structurally equal states.
 *
 * A dead register whose value weighs more than {@link VALUE_LIMITS.deadValueWeight} keeps
 * its stamp but its value becomes `null`. This is a function of the merged result alone
 * (a register, once dead, stays dead: tombstones only grow), and `null` ranks above every
 * heavy value in a same-stamp tie, so merge stays commutative, associative and idempotent.
 */
export function mergeLww(a: LwwRecordState, b: LwwRecordState): LwwRecordState {
  const registers = new Map<string, FieldEntry>()
  for (const source of [a.fields, b.fields]) {
    for (const entry of source) {
      const seen = registers.get(entry[0])
      registers.set(entry[0], seen === undefined ? entry : winner(seen, entry))
    }
  }
  const deleted = a.deleted === null ? b.deleted : b.deleted === null ? a.deleted : a.deleted < b.deleted ? b.deleted : a.deleted
  const fields = [...registers.values()].sort(byName)
  if (deleted !== null) {
    for (let i = 0; i < fields.length; i++) {
      const entry = fields[i] as FieldEntry
      if (entry[2] <= deleted && entry[1] !== null && heavy(entry[1])) fields[i] = [entry[0], null, entry[2]]
    }
  }
  return { fields, deleted }
}

/** Whether one register is alive, i.e. written after the record's tombstone. */
function alive(entry: FieldEntry, deleted: Stamp | null): boolean {
  return deleted === null || entry[2] > deleted
}

/** The record as the app sees it: alive fields only; `undefined` when no field is alive (deleted or never written). */
export function lwwView(state: LwwRecordState): RecordValue | undefined {
  // One pass, no intermediate arrays: a cold start's first query builds this for every record.
  let record: Record<string, Value> | undefined
  for (const entry of state.fields) {
    if (!alive(entry, state.deleted)) continue
    record ??= {}
    setOwnField(record, entry[0], entry[1])
  }
  return record
}

/**
 * Every field's last value, dead ones included: what the record looked like before it was
 * deleted, for evaluating who may see a tombstone.
 */
export function lwwLatest(state: LwwRecordState): RecordValue {
  return recordFromEntries(state.fields.map(([name, value]) => [name, value] as const))
}

/** True when at least one field is alive. */
export function isAlive(state: LwwRecordState): boolean {
  return state.fields.some((entry) => alive(entry, state.deleted))
}

/** True when the record has a tombstone and no field is alive: what a replica must keep until the horizon. */
export function isTombstone(state: LwwRecordState): boolean {
  return state.deleted !== null && !isAlive(state)
}

function entriesOf(record: RecordValue, stamp: Stamp): FieldEntry[] {
  const entries: FieldEntry[] = []
  for (const name of Object.keys(record)) entries.push([name, getField(record, name) as Value, stamp])
  return entries.sort(byName)
}

/**
 * The delta of `set(record)`: the record replaces whatever was there. It carries a tombstone
 * at `deleteStamp` and every given field at `fieldStamp`, so fields not given die and the
 * given ones live. `deleteStamp` must be smaller than `fieldStamp` (take two ticks).
 * An empty record therefore reads as absent.
 */
export function lwwSetState(record: RecordValue, deleteStamp: Stamp, fieldStamp: Stamp): LwwRecordState {
  assertRecord(record)
  if (!(deleteStamp < fieldStamp)) {
    throw new InvalidValueError('lwwSetState needs deleteStamp < fieldStamp (tick the clock twice), or the new fields would be dead on arrival', { deleteStamp, fieldStamp })
  }
  return { fields: entriesOf(record, fieldStamp), deleted: deleteStamp }
}

/** The delta of `update(patch)`: only the given fields change; other fields keep their registers. */
export function lwwUpdateState(patch: RecordValue, stamp: Stamp): LwwRecordState {
  assertRecord(patch, 'patch')
  return { fields: entriesOf(patch, stamp), deleted: null }
}

/** The delta of `delete()`: a tombstone at `stamp`; every field written before it dies. */
export function lwwDeleteState(stamp: Stamp): LwwRecordState {
  return { fields: [], deleted: stamp }
}

/** Keeps only the named fields (a shape's `fields` projection); the tombstone is kept. */
export function projectLww(state: LwwRecordState, fields: Iterable<string>): LwwRecordState {
  const keep = new Set(fields)
  return { fields: state.fields.filter((entry) => keep.has(entry[0])), deleted: state.deleted }
}

/** The newest stamp anywhere in the state (field or tombstone), or null for an empty state. */
export function lwwMaxStamp(state: LwwRecordState): Stamp | null {
  let max = state.deleted
  for (const entry of state.fields) if (max === null || entry[2] > max) max = entry[2]
  return max
}

/** Structural equality of two states in merged (sorted) form; values compare with `valuesEqual`. */
export function lwwEquals(a: LwwRecordState, b: LwwRecordState): boolean {
  if (a.deleted !== b.deleted || a.fields.length !== b.fields.length) return false
  for (let i = 0; i < a.fields.length; i++) {
    const x = a.fields[i] as FieldEntry
    const y = b.fields[i] as FieldEntry
    if (x[0] !== y[0] || x[2] !== y[2] || !valuesEqual(x[1], y[1])) return false
  }
  return true
}

/** True when the state holds nothing (merging it changes no state). */
export function lwwIsEmpty(state: LwwRecordState): boolean {
  return state.fields.length === 0 && state.deleted === null
}
