/**
 * What "equal" means when a scenario compares a device with the relay: records as the app
 * sees them (alive fields only, deleted records absent), a shape's slice of them (its
 * `where`, then its `fields`), counters as numbers. The relay's side is computed from its
 * raw CRDT states with core's own functions, so both sides use one definition.
 */
import {
  COUNTERS_MAP,
  compilePredicate,
  counterValue,
  lwwView,
  type Change,
  type CounterState,
  type LwwRecordState,
  type RecordValue,
  type Shape,
} from '@outpost/core'

/** Records by key, as the app sees them. */
export type RecordView = ReadonlyMap<string, RecordValue>

/** The alive records among `records` (one map's changes by key, e.g. from `RawClient.readMap`). */
export function recordsView(records: ReadonlyMap<string, Change>): Map<string, RecordValue> {
  const out = new Map<string, RecordValue>()
  for (const [key, change] of records) {
    if (change.kind !== 'lww') continue
    const view = lwwView(change.state as LwwRecordState)
    if (view !== undefined) out.set(key, view)
  }
  return out
}

/** The slice of `view` that `shape` selects: records matching `where`, projected on `fields`. */
export function shapeView(view: RecordView, shape: Shape): Map<string, RecordValue> {
  const test = compilePredicate(shape.where)
  const out = new Map<string, RecordValue>()
  for (const [key, record] of view) {
    if (!test(record)) continue
    if (shape.fields === undefined) {
      out.set(key, record)
      continue
    }
    const projected: Record<string, unknown> = {}
    for (const field of shape.fields) if (Object.hasOwn(record, field)) projected[field] = record[field]
    out.set(key, projected as RecordValue)
  }
  return out
}

/** Counter values by name, from the records of {@link COUNTERS_MAP}. */
export function countersView(records: ReadonlyMap<string, Change>): Map<string, number> {
  const out = new Map<string, number>()
  for (const [key, change] of records) if (change.kind === 'counter') out.set(key, counterValue(change.state as CounterState))
  return out
}

/** The counters map's name on the wire. */
export const COUNTERS = COUNTERS_MAP

/** Canonical JSON (object keys sorted), so field order never makes two equal records differ. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  })
}

/** Every key whose value differs between `device` and `relay`, as readable lines (empty: equal). */
export function differences<V>(device: ReadonlyMap<string, V>, relay: ReadonlyMap<string, V>, limit = 8): string[] {
  const lines: string[] = []
  for (const key of new Set([...device.keys(), ...relay.keys()])) {
    const a = device.get(key)
    const b = relay.get(key)
    if (canonical(a) === canonical(b)) continue
    lines.push(`${key}: device ${a === undefined ? '(absent)' : canonical(a)} vs relay ${b === undefined ? '(absent)' : canonical(b)}`)
  }
  lines.sort()
  return lines.length > limit ? [...lines.slice(0, limit), `… ${lines.length - limit} more`] : lines
}
