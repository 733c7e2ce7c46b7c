/**
 * Checks one incoming change before it is merged: values are storable, every stamp
 * decodes and is within `maxDrift` of the relay's clock, and the change does not forge
 * other replicas' writes.
 *
 * Forgery rule: a session writes as its own replica. A register, OR tag or counter entry
 * of another replica is accepted only when the relay already holds it (or something
 * newer), so replaying what it received is fine and inventing another user's write is
 * not. This holds on every path a change arrives by, answers to the relay's `push`
 * included: a client answers `push` with its own writes only (each replica uploads what
 * it wrote), so a made-up digest cannot get another replica's stamps accepted.
 */
import {
  ForbiddenError,
  InvalidValueError,
  assertValue,
  valuesEqual,
  type Change,
  type CounterState,
  type CrdtState,
  type Hlc,
  type LwwRecordState,
  type OrSetState,
} from '@outpost/core'

/** What {@link checkChange} needs to know. */
export interface ChangeContext {
  /** The relay's clock: `checkRemote` rejects stamps too far ahead with the relay's time. */
  readonly clock: Hlc
  /** The session's replica id. */
  readonly replicaId: string
  /** The relay's current state of the key, if any. */
  readonly current: CrdtState | undefined
}

function forged(change: Change, what: string): ForbiddenError {
  return new ForbiddenError(`This change to ${change.map}/${change.key.slice(0, 64)} carries ${what} of another replica that the relay does not have; a session may only write as its own replica`, {
    map: change.map,
    key: change.key.slice(0, 256),
  })
}


/** Throws a typed error when `change` may not be merged; see the module comment. */
export function checkChange(change: Change, context: ChangeContext): void {
  const { clock, replicaId } = context
  const where = `${change.map}/${change.key.slice(0, 64)}`
  switch (change.kind) {
    case 'lww': {
      const state = change.state
      const current = context.current as LwwRecordState | undefined
      for (const [name, value, stamp] of state.fields) {
        assertValue(value, `${where}.${name.slice(0, 64)}`)
        if (clock.checkRemote(stamp).replica !== replicaId) {
          const mine = current?.fields.find((entry) => entry[0] === name)
          // Equal stamps must carry the same write; a newer register makes the old one harmless.
          if (mine === undefined || mine[2] < stamp || (mine[2] === stamp && !valuesEqual(mine[1], value))) throw forged(change, `a field "${name.slice(0, 64)}"`)
        }
      }
      if (state.deleted !== null) {
        const foreign = clock.checkRemote(state.deleted).replica !== replicaId
        const known = current?.deleted ?? null
        if (foreign && (known === null || known < state.deleted)) throw forged(change, 'a delete')
      }
      return
    }
    case 'or': {
      const state = change.state
      const current = context.current as OrSetState | undefined
      for (const [tag, value] of state.adds) {
        assertValue(value, `${where}[${tag.slice(0, 40)}]`)
        if (clock.checkRemote(tag).replica !== replicaId) {
          const known = current !== undefined && (current.adds.some(([t]) => t === tag) || current.removes.includes(tag))
          if (!known) throw forged(change, 'an add')
        }
      }
      for (const tag of state.removes) clock.checkRemote(tag)
      return
    }
    case 'counter': {
      const state = change.state
      const current = context.current as CounterState | undefined
      for (const [replica, inc, dec] of state) {
        if (!Number.isFinite(inc) || !Number.isFinite(dec)) throw new InvalidValueError(`Counter ${change.map} has a non-finite total for replica ${replica.slice(0, 64)}`)
        if (replica !== replicaId) {
          const mine = current?.find(([r]) => r === replica)
          if (mine === undefined || mine[1] < inc || mine[2] < dec) throw forged(change, 'counter totals')
        }
      }
      return
    }
  }
}
