/**
 * PN counters: each replica keeps two monotone totals, of its increments and of its
 * decrements; merging takes the per-replica maximum of each, so a replayed or duplicated
 * change never counts twice. The value is the sum of increments minus decrements.
 */
import { InvalidValueError } from '../errors'
import type { CounterState, ReplicaId } from '../types'

type Entry = CounterState[number]

/** The state of a counter nobody changed. */
export function emptyCounter(): CounterState {
  return []
}

function byReplica(a: Entry, b: Entry): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

/** Per-replica maximum of both totals, sorted by replica. */
export function mergeCounter(a: CounterState, b: CounterState): CounterState {
  const totals = new Map<ReplicaId, Entry>()
  for (const source of [a, b]) {
    for (const entry of source) {
      const seen = totals.get(entry[0])
      totals.set(entry[0], seen === undefined ? entry : [entry[0], Math.max(seen[1], entry[1]), Math.max(seen[2], entry[2])])
    }
  }
  return [...totals.values()].sort(byReplica)
}

/**
 * The counter's value. Sums in replica order, so equal states give the same number on
 * every replica even with non-integer deltas.
 */
export function counterValue(state: CounterState): number {
  let value = 0
  for (const entry of [...state].sort(byReplica)) value += entry[1] - entry[2]
  return value
}

/**
 * The delta of adding `delta` (negative to decrement) on `replica`, given the current
 * state: that replica's new totals. Throws {@link InvalidValueError} for NaN, ±Infinity or a
 * total that would stop being finite.
 */
export function counterAddState(current: CounterState, replica: ReplicaId, delta: number): CounterState {
  if (typeof delta !== 'number' || !Number.isFinite(delta)) {
    throw new InvalidValueError(`a counter delta must be a finite number, got ${String(delta)}`, { delta: String(delta) })
  }
  let increments = 0
  let decrements = 0
  for (const entry of current) {
    if (entry[0] !== replica) continue
    increments = Math.max(increments, entry[1])
    decrements = Math.max(decrements, entry[2])
  }
  if (delta > 0) increments += delta
  else if (delta < 0) decrements -= delta
  if (!Number.isFinite(increments) || !Number.isFinite(decrements)) {
    throw new InvalidValueError('this counter change would overflow to Infinity; use smaller deltas', { delta })
  }
  return [[replica, increments, decrements]]
}

/** Structural equality of two merged (sorted) states. */
export function counterEquals(a: CounterState, b: CounterState): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Entry
    const y = b[i] as Entry
    if (x[0] !== y[0] || x[1] !== y[1] || x[2] !== y[2]) return false
  }
  return true
}

/** True when the state holds nothing. */
export function counterIsEmpty(state: CounterState): boolean {
  return state.length === 0
}

/**
 * The collection every named counter lives in (`client.counter(name)` is the key `name`
 * of this map), so one subscription replicates all of a client's counters. Relay rules
 * for counters are written for this map name.
 */
export const COUNTERS_MAP = '$counters'
