/**
 * One merge, equality and emptiness test per collection kind, chosen by the kind's name,
 * so code that handles any {@link Change} (outbox, relay, stores, Merkle digests) does not
 * switch on kinds itself.
 */
import { InternalError } from '../errors'
import type { Change, CollectionKind, CounterState, LwwRecordState, OrSetState } from '../types'
import { counterEquals, counterIsEmpty, emptyCounter, mergeCounter } from './pn-counter'
import { emptyLww, lwwEquals, lwwIsEmpty, mergeLww } from './lww-record'
import { emptyOr, mergeOr, orEquals, orIsEmpty } from './or-set'

/** The state type of each collection kind. */
export interface CrdtStates {
  lww: LwwRecordState
  or: OrSetState
  counter: CounterState
}

/** The state of any kind. */
export type CrdtState = CrdtStates[CollectionKind]

/** What a collection kind's state supports: the join-semilattice operations. */
export interface CrdtType<S> {
  /** The kind's name. */
  readonly kind: CollectionKind
  /** The state of a key nobody wrote (the identity of `merge`). */
  empty(): S
  /** Join: idempotent, commutative, associative; the result is normalized. */
  merge(a: S, b: S): S
  /** Structural equality of normalized states. */
  equals(a: S, b: S): boolean
  /** True when merging the state into anything changes nothing. */
  isEmpty(state: S): boolean
}

/** The {@link CrdtType} of each collection kind. */
export const CRDT_TYPES: { readonly [K in CollectionKind]: CrdtType<CrdtStates[K]> } = {
  lww: { kind: 'lww', empty: emptyLww, merge: mergeLww, equals: lwwEquals, isEmpty: lwwIsEmpty },
  or: { kind: 'or', empty: emptyOr, merge: mergeOr, equals: orEquals, isEmpty: orIsEmpty },
  counter: { kind: 'counter', empty: emptyCounter, merge: mergeCounter, equals: counterEquals, isEmpty: counterIsEmpty },
}

/** Merges two states of the given kind. */
export function mergeState<K extends CollectionKind>(kind: K, a: CrdtStates[K], b: CrdtStates[K]): CrdtStates[K] {
  return (CRDT_TYPES[kind] as CrdtType<CrdtStates[K]>).merge(a, b)
}

/** Structural equality of two normalized states of the given kind. */
export function stateEquals<K extends CollectionKind>(kind: K, a: CrdtStates[K], b: CrdtStates[K]): boolean {
  return (CRDT_TYPES[kind] as CrdtType<CrdtStates[K]>).equals(a, b)
}

/**
 * Merges two changes to the same key of the same map. Throws {@link InternalError} when
 * they address different keys, maps or kinds: that is a bug in the caller, not bad data.
 */
export function mergeChange(a: Change, b: Change): Change {
  if (a.kind !== b.kind || a.map !== b.map || a.key !== b.key) {
    throw new InternalError('mergeChange needs two changes to the same kind, map and key', {
      a: { kind: a.kind, map: a.map, key: a.key },
      b: { kind: b.kind, map: b.map, key: b.key },
    })
  }
  switch (a.kind) {
    case 'lww':
      return { kind: 'lww', map: a.map, key: a.key, state: mergeLww(a.state, (b as typeof a).state) }
    case 'or':
      return { kind: 'or', map: a.map, key: a.key, state: mergeOr(a.state, (b as typeof a).state) }
    case 'counter':
      return { kind: 'counter', map: a.map, key: a.key, state: mergeCounter(a.state, (b as typeof a).state) }
  }
}

/** True when the change carries nothing (applying it changes no state). */
export function changeIsEmpty(change: Change): boolean {
  switch (change.kind) {
    case 'lww':
      return lwwIsEmpty(change.state)
    case 'or':
      return orIsEmpty(change.state)
    case 'counter':
      return counterIsEmpty(change.state)
  }
}
