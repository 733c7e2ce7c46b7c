/** Digests of stored CRDT states, by collection kind (the Merkle trees' entries). */
import { counterDigest, lwwDigest, orDigest, type CollectionKind, type CounterState, type CrdtState, type LwwRecordState, type OrSetState } from '@outpost/core'

/** The digest of `state`; `fields` projects LWW records (a shape's digest covers only what it sends). */
export function stateDigest(kind: CollectionKind, state: CrdtState, fields?: readonly string[]): string {
  switch (kind) {
    case 'lww':
      return lwwDigest(state as LwwRecordState, fields)
    case 'or':
      return orDigest(state as OrSetState)
    case 'counter':
      return counterDigest(state as CounterState)
  }
}
