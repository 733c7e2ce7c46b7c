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
import { isStamp } from '../clock/hlc'
import { InvalidMessageError, InvalidValueError, isOutpostError } from '../errors'
import type { Change } from '../types'
import { isWellFormed } from '../unicode'
import { assertValue } from '../value'

/**
 * Throws a typed error (core's `InvalidValueError`, `INVALID_VALUE`) when `change`, received
 * from a peer, holds a value or a stamp core's rules refuse (see the module comment).
 * Drift is not checked here: a receiver decides what a stamp far ahead means for it.
 */
export function assertReceivedChange(change: Change): void {
  // Runs on every record of an initial sync: no string is built unless something is refused.
  switch (change.kind) {
    case 'lww': {
      const fields = change.state.fields
      for (let i = 0; i < fields.length; i++) {
        const [name, value, fieldStamp] = fields[i] as (typeof fields)[number]
        // Fields usually share one stamp: it is checked once.
        if ((i === 0 || fieldStamp !== (fields[i - 1] as (typeof fields)[number])[2]) && !isStamp(fieldStamp)) throw badStamp(change, fieldStamp)
        checkValue(change, value, name)
      }
      const deleted = change.state.deleted
      if (deleted !== null && !isStamp(deleted)) throw badStamp(change, deleted)
      return
    }
    case 'or': {
      for (const [tag, value] of change.state.adds) {
        if (!isStamp(tag)) throw badStamp(change, tag)
        checkValue(change, value, `[${tag.slice(0, 40)}]`)
      }
      for (const tag of change.state.removes) if (!isStamp(tag)) throw badStamp(change, tag)
      return
    }
    case 'counter': {
      for (const [replica, inc, dec] of change.state) {
        if (!Number.isFinite(inc) || !Number.isFinite(dec)) throw new InvalidValueError(`Counter ${where(change)} has a non-finite total for replica ${replica.slice(0, 64)}`, { map: change.map, key: change.key.slice(0, 256) })
      }
      return
    }
  }
}

function where(change: Change): string {
  return `${change.map}/${change.key.slice(0, 64)}`
}

function badStamp(change: Change, stamp: unknown): InvalidValueError {
  return new InvalidValueError(`${where(change)} carries a malformed HLC stamp: expected "<10 base-36 digits>-<4 hex digits>-<replica id>"`, {
    map: change.map,
    key: change.key.slice(0, 256),
    stamp: typeof stamp === 'string' ? stamp.slice(0, 200) : typeof stamp,
  })
}

/** {@link assertValue} of one value of `change` (`at`: a field name or an OR tag), its path spelt out only for a value that is not a plain primitive. */
function checkValue(change: Change, value: unknown, at: string): void {
  switch (typeof value) {
    case 'string':
      if (isWellFormed(value)) return
      break
    case 'boolean':
    case 'bigint':
      return
    case 'number':
      if (!Number.isNaN(value)) return
      break
    case 'object':
      if (value === null) return
      break
  }
  assertValue(value, `${where(change)}${at.startsWith('[') ? '' : '.'}${at.slice(0, 64)}`)
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
