/**
 * The parts of a state that one replica, or one write, contributed: what a replica may
 * upload when the relay asks for a key (`push`), and what is taken back when the relay
 * refuses a write for good.
 *
 * Every part is found by its stamps (LWW registers and tombstones, OR tags) or its replica
 * entry (counters), which name exactly one writer; nothing is guessed from values.
 */
import { stampReplica } from '../clock/hlc'
import type { Change, CounterState, LwwRecordState, OrSetState, ReplicaId, Stamp } from '../types'
import type { CrdtState } from './change'
import type { CollectionKind } from '../types'

/**
 * This replica's own writes in `change`: LWW registers and the tombstone it stamped, OR adds
 * it tagged (and every remove: a remove is the remover's own write), its counter entry.
 * Undefined when nothing in the change is its own. Each replica uploads only its own writes,
 * so a relay that lost data gets every write back from the device that made it.
 */
export function ownPart(change: Change, replica: ReplicaId): Change | undefined {
  switch (change.kind) {
    case 'lww': {
      const fields = change.state.fields.filter((entry) => stampReplica(entry[2]) === replica)
      const deleted = change.state.deleted !== null && stampReplica(change.state.deleted) === replica ? change.state.deleted : null
      if (fields.length === 0 && deleted === null) return undefined
      return { ...change, state: { fields, deleted } }
    }
    case 'or': {
      const adds = change.state.adds.filter((add) => stampReplica(add[0]) === replica)
      if (adds.length === 0 && change.state.removes.length === 0) return undefined
      return { ...change, state: { adds, removes: change.state.removes } }
    }
    case 'counter': {
      const own = change.state.filter((entry) => entry[0] === replica)
      return own.length === 0 ? undefined : { ...change, state: own }
    }
  }
}

/**
 * `state` without what the write `delta` put there: LWW registers and a tombstone still
 * carrying the delta's stamps, OR adds under its tags and the removes it made, and (for a
 * counter) the writer's entry, which totals every increment it made. What it overwrote is
 * not known locally; the relay's copy brings it back at the next reconciliation.
 */
export function withoutWrite<K extends CollectionKind>(kind: K, state: CrdtState, delta: CrdtState, writer: ReplicaId): CrdtState {
  switch (kind) {
    case 'lww': {
      const s = state as LwwRecordState
      const d = delta as LwwRecordState
      const stamps = new Set<Stamp>(d.fields.map((entry) => entry[2]))
      const deleted = d.deleted !== null && s.deleted === d.deleted ? null : s.deleted
      return { fields: s.fields.filter((entry) => !stamps.has(entry[2])), deleted } satisfies LwwRecordState
    }
    case 'or': {
      const s = state as OrSetState
      const d = delta as OrSetState
      const tags = new Set<Stamp>(d.adds.map((add) => add[0]))
      const removed = new Set<Stamp>(d.removes)
      return { adds: s.adds.filter((add) => !tags.has(add[0])), removes: s.removes.filter((tag) => !removed.has(tag)) } satisfies OrSetState
    }
    default:
      return (state as CounterState).filter((entry) => entry[0] !== writer) satisfies CounterState
  }
}
