/**
 * Re-stamping a replica's own pending writes when its clock turns out to have been wrong.
 *
 * A device whose clock ran 5 minutes fast stamps its offline writes 5 minutes in the
 * future: the relay refuses them (beyond `maxDrift`), and once accepted they would beat
 * edits made later elsewhere. When the relay measures the offset, the device moves the
 * wall time of every stamp of its pending writes by the correction (`shiftStamp`), which
 * keeps their order, and rewrites its local states to match (`restampState`).
 */
import { MAX_WALL, decodeStamp, encodeStamp } from '../clock/hlc'
import type { Change, CollectionKind, LwwRecordState, OrSetState, Stamp } from '../types'
import type { CrdtState } from './change'
import { emptyLww, mergeLww } from './lww-record'
import { emptyOr, mergeOr } from './or-set'

/** Every stamp a change carries (LWW registers and tombstone, OR tags and removed tags). */
export function stampsOf(change: Change): Stamp[] {
  switch (change.kind) {
    case 'lww':
      return [...change.state.fields.map((entry) => entry[2]), ...(change.state.deleted === null ? [] : [change.state.deleted])]
    case 'or':
      return [...change.state.adds.map((add) => add[0]), ...change.state.removes]
    case 'counter':
      return []
  }
}

/** `stamp` with its wall time moved by `shiftMs` (clamped to the encodable range); counter and replica unchanged. */
export function shiftStamp(stamp: Stamp, shiftMs: number): Stamp {
  const parts = decodeStamp(stamp)
  return encodeStamp({ ...parts, wall: Math.min(MAX_WALL, Math.max(0, parts.wall + Math.round(shiftMs))) })
}

/** `state` with every stamp found in `mapping` replaced, normalized again (a register may now be dead). */
export function restampState(kind: CollectionKind, state: CrdtState, mapping: ReadonlyMap<Stamp, Stamp>): CrdtState {
  const map = (stamp: Stamp): Stamp => mapping.get(stamp) ?? stamp
  switch (kind) {
    case 'lww': {
      const s = state as LwwRecordState
      return mergeLww({ fields: s.fields.map(([name, value, stamp]) => [name, value, map(stamp)] as const), deleted: s.deleted === null ? null : map(s.deleted) }, emptyLww())
    }
    case 'or': {
      const s = state as OrSetState
      return mergeOr({ adds: s.adds.map(([tag, value]) => [map(tag), value] as const), removes: s.removes.map(map) }, emptyOr())
    }
    default:
      return state
  }
}
