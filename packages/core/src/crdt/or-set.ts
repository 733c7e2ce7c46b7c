/**
 * Observed-remove sets: the values of one OR-map key. Every add carries a unique tag (the
 * writer's stamp); a remove names the tags it observed carrying the value, so an add it did
 * not see survives it (add wins on concurrency).
 *
 * Merged states are normalized: adds whose tag was removed are dropped (the removed tag is
 * enough to keep them dropped), and both lists are sorted by tag. Normalizing commutes with
 * merging, so the laws hold on normalized and raw states alike.
 */
import type { OrSetState, Stamp, Value } from '../types'
import { assertValue, compareValues, valuesEqual } from '../value'

type Add = readonly [tag: Stamp, value: Value]

const EMPTY: OrSetState = Object.freeze({ adds: Object.freeze([]) as readonly Add[], removes: Object.freeze([]) as readonly Stamp[] })

/** The state of a key nobody wrote. */
export function emptyOr(): OrSetState {
  return EMPTY
}

function byTag(a: Add, b: Add): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

/** Unions adds and removes, drops removed adds, sorts by tag. */
export function mergeOr(a: OrSetState, b: OrSetState): OrSetState {
  const removes = new Set<Stamp>(a.removes)
  for (const tag of b.removes) removes.add(tag)
  const adds = new Map<Stamp, Add>()
  for (const source of [a.adds, b.adds]) {
    for (const add of source) {
      if (removes.has(add[0])) continue
      const seen = adds.get(add[0])
      // One tag is one add; a clash only comes from bad input, and picking by value keeps merge commutative.
      if (seen === undefined || compareValues(seen[1], add[1]) < 0) adds.set(add[0], add)
    }
  }
  return { adds: [...adds.values()].sort(byTag), removes: [...removes].sort() }
}

/** The live adds of a state (not removed by a tag it lists). */
function liveAdds(state: OrSetState): Add[] {
  const removed = new Set(state.removes)
  return state.adds.filter((add) => !removed.has(add[0]))
}

/** The set's values: distinct under `valuesEqual`, sorted by `compareValues` (the same on every replica). */
export function orValues(state: OrSetState): Value[] {
  const values = liveAdds(state)
    .map((add) => add[1])
    .sort(compareValues)
  const distinct: Value[] = []
  for (const value of values) {
    const last = distinct[distinct.length - 1]
    if (last === undefined || !valuesEqual(last, value)) distinct.push(value)
  }
  return distinct
}

/** True when an equal value is in the set. */
export function orHas(state: OrSetState, value: Value): boolean {
  return liveAdds(state).some((add) => valuesEqual(add[1], value))
}

/** The delta of adding `value` under a fresh `tag` (the writer's next stamp). */
export function orAddState(value: Value, tag: Stamp): OrSetState {
  assertValue(value)
  return { adds: [[tag, value]], removes: [] }
}

/**
 * The delta of removing `value` as seen in `current`: it removes exactly the tags observed
 * carrying an equal value, so a concurrent add elsewhere survives. Removing an absent value
 * gives an empty delta.
 */
export function orRemoveState(current: OrSetState, value: Value): OrSetState {
  assertValue(value)
  const tags = liveAdds(current)
    .filter((add) => valuesEqual(add[1], value))
    .map((add) => add[0])
  return { adds: [], removes: tags.sort() }
}

/** Structural equality of two normalized states. */
export function orEquals(a: OrSetState, b: OrSetState): boolean {
  if (a.adds.length !== b.adds.length || a.removes.length !== b.removes.length) return false
  for (let i = 0; i < a.adds.length; i++) {
    const x = a.adds[i] as Add
    const y = b.adds[i] as Add
    if (x[0] !== y[0] || !valuesEqual(x[1], y[1])) return false
  }
  for (let i = 0; i < a.removes.length; i++) if (a.removes[i] !== b.removes[i]) return false
  return true
}

/** True when the state holds nothing. */
export function orIsEmpty(state: OrSetState): boolean {
  return state.adds.length === 0 && state.removes.length === 0
}
