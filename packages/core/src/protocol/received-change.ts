/**
 * The check of a change that arrived from the other side, made once, where it is received,
 * so that what is merged and stored afterwards needs no check of its own.
 *
 * The frame decoder and the change schema already hold a change's envelope to the
 * protocol's rules (map name, key and field names well-formed and bounded, every string in
 * the frame well-formed UTF-8, stamps bounded strings, counts bounded). What they leave to
 * the receiver is what only core's value and clock rules decide: every value is a
 * {@link Value} within {@link VALUE_LIMITS.maxDepth} (no NaN, nothing a msgpack peer can
 * send that the write API would refuse), every stamp decodes as an HLC stamp, and counter
 * totals are finite. A change that breaks one is refused alone, with a typed error that
 * names it; the rest of its frame is taken.
 */
import { decodeStamp } from '../clock/hlc'
import { InvalidMessageError, InvalidValueError, isOutpostError } from '../errors'
import type { Change, Stamp } from '../types'
import { assertValue } from '../value'

/**
 * Throws a typed error (core's `InvalidValueError`, `INVALID_VALUE`) when `change`, received
 * from a peer, holds a value or a stamp core's rules refuse (see the module comment).
 * Drift is not checked here: a receiver decides what a stamp far ahead means for it.
 */
export function assertReceivedChange(change: Change): void {
  const where = `${change.map}/${change.key.slice(0, 64)}`
  // A record's fields usually share one stamp: each distinct stamp is decoded once.
  let lastStamp: Stamp | undefined
  const stamp = (value: Stamp): void => {
    if (value === lastStamp) return
    decodeStamp(value)
    lastStamp = value
  }
  switch (change.kind) {
    case 'lww': {
      for (const [name, value, fieldStamp] of change.state.fields) {
        stamp(fieldStamp)
        assertValue(value, `${where}.${name.slice(0, 64)}`)
      }
      if (change.state.deleted !== null) stamp(change.state.deleted)
      return
    }
    case 'or': {
      for (const [tag, value] of change.state.adds) {
        stamp(tag)
        assertValue(value, `${where}[${tag.slice(0, 40)}]`)
      }
      for (const tag of change.state.removes) stamp(tag)
      return
    }
    case 'counter': {
      for (const [replica, inc, dec] of change.state) {
        if (!Number.isFinite(inc) || !Number.isFinite(dec)) throw new InvalidValueError(`Counter ${where} has a non-finite total for replica ${replica.slice(0, 64)}`, { map: change.map, key: change.key.slice(0, 256) })
      }
      return
    }
  }
}

/** The changes of a received list that pass {@link assertReceivedChange}, and the first refusal. */
export interface ReceivedChanges {
  /** The changes to take (the input list itself when none was refused). */
  readonly accepted: readonly Change[]
  /** How many were refused. */
  readonly refused: number
  /**
   * The first refusal as an {@link InvalidMessageError} (`INVALID_MESSAGE`) naming the
   * change, the rule it broke (`details.reason`, the code of the underlying error) and how
   * many changes of the list were refused; undefined when none was.
   */
  readonly error: InvalidMessageError | undefined
}

/**
 * Checks each change of a list received from `from` (e.g. `'the relay'`) with
 * {@link assertReceivedChange}; a change that fails is left out and counted. Errors other
 * than Outpost's own (a bug, not bad data) are rethrown.
 */
export function checkReceivedChanges(changes: readonly Change[], from: string): ReceivedChanges {
  let accepted: Change[] | undefined
  let first: { change: Change; error: Error & { code?: string } } | undefined
  let refused = 0
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as Change
    try {
      assertReceivedChange(change)
      accepted?.push(change)
    } catch (error) {
      if (!isOutpostError(error)) throw error
      // The first refusal copies what came before it; a list with none is returned as it is.
      accepted ??= changes.slice(0, i)
      first ??= { change, error }
      refused++
    }
  }
  if (first === undefined) return { accepted: changes, refused: 0, error: undefined }
  const { change, error } = first
  const what = `${change.map}/${change.key.slice(0, 64)}`
  const message = `${from} sent a change to ${what} that this device refuses (${error.message})${refused > 1 ? `, and ${refused - 1} more like it` : ''}; ${refused > 1 ? 'they were' : 'it was'} not applied, the rest of the frame was. Upgrade the relay, or check what writes to this map without Outpost's checks`
  return { accepted: accepted ?? [], refused, error: new InvalidMessageError(message, { map: change.map, key: change.key.slice(0, 256), reason: error.code, refused }) }
}
