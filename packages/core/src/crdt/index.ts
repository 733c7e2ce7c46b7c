/** The CRDTs: LWW records, OR sets, PN counters, and kind-generic merging. */
export {
  emptyLww,
  mergeLww,
  lwwView,
  lwwLatest,
  isAlive,
  isTombstone,
  lwwSetState,
  lwwUpdateState,
  lwwDeleteState,
  projectLww,
  lwwMaxStamp,
  lwwEquals,
  lwwIsEmpty,
} from './lww-record'
export { emptyOr, mergeOr, orValues, orHas, orAddState, orRemoveState, orEquals, orIsEmpty } from './or-set'
export { COUNTERS_MAP, emptyCounter, mergeCounter, counterValue, counterAddState, counterEquals, counterIsEmpty } from './pn-counter'
export { CRDT_TYPES, mergeState, stateEquals, mergeChange, changeIsEmpty } from './change'
export type { CrdtStates, CrdtState, CrdtType } from './change'
export { CrdtMap } from './crdt-map'
export { ownPart, withoutWrite } from './write-parts'
