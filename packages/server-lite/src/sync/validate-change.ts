/**
 * Checks one incoming change before it is merged, in two steps: {@link checkChange}, once,
 * before the store's transaction (what needs no stored data), then {@link checkForeign},
 * inside it, against the key's current record. Together: its map name, key, field names and
 * values follow core's rules (well-formed text, depth), values are storable, every stamp
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
  assertFieldName,
  assertKey,
  assertMapName,
  assertValue,
  valuesEqual,
  type Change,
  type CounterState,
  type CrdtState,
  type Hlc,
  type LwwRecordState,
  type OrSetState,
  type Stamp,
} from '@outpost/core'

/** What {@link checkChange} needs to know. */
export interface ChangeContext {
  /** The relay's clock: `checkRemote` rejects stamps too far ahead with the relay's time. */
  readonly clock: Hlc
  /** The session's replica id. */
  readonly replicaId: string
}

/**
 * The entries of a change stamped (or, for a counter, held) by another replica, which the
 * relay's current record must vouch for (see {@link checkForeign}): indices into the
 * change's fields (LWW), adds (OR) or replicas (counter), and whether an LWW tombstone is
 * another replica's.
 */
export interface ForeignEntries {
  readonly entries: readonly number[]
  readonly deleted: boolean
}

function forged(change: Change, what: string): ForbiddenError {
  return new ForbiddenError(`This change to ${change.map}/${change.key.slice(0, 64)} carries ${what} of another replica that the relay does not have; a session may only write as its own replica`, {
    map: change.map,
    key: change.key.slice(0, 256),
  })
}

/**
 * Throws a typed error when `change` is malformed or carries a stamp too far ahead; see the
 * module comment. Needs no stored data, so it runs once, before the store's transaction.
 * Returns the entries {@link checkForeign} must check against the current record, or
 * undefined when every entry is the writer's own (the usual case).
 */
export function checkChange(change: Change, context: ChangeContext): ForeignEntries | undefined {
  const { clock, replicaId } = context
  // The same key and value rules as the write API (core), so nothing a raw client sends is stored differently than written.
  assertMapName(change.map)
  assertKey(change.key)
  const where = `${change.map}/${change.key.slice(0, 64)}`
  const foreign: number[] = []
  let deleted = false
  // A batch's fields usually share one stamp: decode and drift-check each distinct stamp once.
  let lastStamp: Stamp | undefined
  let lastForeign = false
  const isForeign = (stamp: Stamp): boolean => {
    if (stamp !== lastStamp) {
      lastForeign = clock.checkRemote(stamp).replica !== replicaId
      lastStamp = stamp
    }
    return lastForeign
  }
  switch (change.kind) {
    case 'lww': {
      const fields = change.state.fields
      for (let i = 0; i < fields.length; i++) {
        const [name, value, stamp] = fields[i] as (typeof fields)[number]
        assertFieldName(name, where)
        assertValue(value, `${where}.${name.slice(0, 64)}`)
        if (isForeign(stamp)) foreign.push(i)
      }
      if (change.state.deleted !== null) deleted = isForeign(change.state.deleted)
      break
    }
    case 'or': {
      const adds = change.state.adds
      for (let i = 0; i < adds.length; i++) {
        const [tag, value] = adds[i] as (typeof adds)[number]
        assertValue(value, `${where}[${tag.slice(0, 40)}]`)
        if (isForeign(tag)) foreign.push(i)
      }
      for (const tag of change.state.removes) clock.checkRemote(tag)
      break
    }
    case 'counter': {
      const state = change.state
      for (let i = 0; i < state.length; i++) {
        const [replica, inc, dec] = state[i] as (typeof state)[number]
        if (!Number.isFinite(inc) || !Number.isFinite(dec)) throw new InvalidValueError(`Counter ${change.map} has a non-finite total for replica ${replica.slice(0, 64)}`)
        if (replica !== replicaId) foreign.push(i)
      }
      break
    }
  }
  return foreign.length === 0 && !deleted ? undefined : { entries: foreign, deleted }
}

/**
 * Throws {@link ForbiddenError} when an entry of `change` that {@link checkChange} found to be
 * another replica's is not vouched for by `current`, the relay's current state of the key:
 * the relay must hold it already (or something newer). Runs in the store's transaction.
 */
export function checkForeign(change: Change, foreign: ForeignEntries, current: CrdtState | undefined): void {
  switch (change.kind) {
    case 'lww': {
      const mine = current as LwwRecordState | undefined
      for (const i of foreign.entries) {
        const [name, value, stamp] = change.state.fields[i] as (typeof change.state.fields)[number]
        const held = mine?.fields.find((entry) => entry[0] === name)
        // Equal stamps must carry the same write; a newer register makes the old one harmless.
        if (held === undefined || held[2] < stamp || (held[2] === stamp && !valuesEqual(held[1], value))) throw forged(change, `a field "${name.slice(0, 64)}"`)
      }
      if (foreign.deleted && change.state.deleted !== null) {
        const known = mine?.deleted ?? null
        if (known === null || known < change.state.deleted) throw forged(change, 'a delete')
      }
      return
    }
    case 'or': {
      const mine = current as OrSetState | undefined
      for (const i of foreign.entries) {
        const tag = (change.state.adds[i] as (typeof change.state.adds)[number])[0]
        const known = mine !== undefined && (mine.adds.some(([t]) => t === tag) || mine.removes.includes(tag))
        if (!known) throw forged(change, 'an add')
      }
      return
    }
    case 'counter': {
      const mine = current as CounterState | undefined
      for (const i of foreign.entries) {
        const [replica, inc, dec] = change.state[i] as (typeof change.state)[number]
        const held = mine?.find(([r]) => r === replica)
        if (held === undefined || held[1] < inc || held[2] < dec) throw forged(change, 'counter totals')
      }
      return
    }
  }
}
