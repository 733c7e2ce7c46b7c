/**
 * One `changes` message encoded once for many subscriptions. Live fan-out sends the same
 * changes to every subscriber of a shape view; the frames differ only in the subscription
 * id (`sub`) and the subscription's frame number (`frame`). Encoding the whole message per
 * subscriber (msgpack, the v2 packing and the self-check scan) was most of a relay's
 * fan-out time, so the message is encoded once, around two slots, and
 * {@link stampChanges} writes each subscriber's two integers into a copy.
 *
 * The result is byte for byte what {@link encodeMessage} gives for `{ ...message, sub, frame }`
 * in the same wire version (same keys in the same order, integers in msgpackr's widths),
 * so no reader can tell the difference; `shared-frame.test.ts` holds it to that.
 */
import { InvalidValueError } from '../errors'
import type { Value } from '../types'
import { concatBytes, encodeChecked, scanFrame, type CodecLimits } from './codec'
import type { ChangesMessage } from './messages'
import { packMessage } from './wire-v2'

/** A `changes` message with the frame number it is sent with (the slot {@link stampChanges} fills). */
export type NumberedChangesMessage = ChangesMessage & { readonly frame: number }

/** The message's fields whose values differ per subscription. */
type Slot = 'sub' | 'frame'

/** A `changes` message encoded but for its `sub` and `frame` values; complete it with {@link stampChanges}. */
export interface SharedChangesFrame {
  /** The constant bytes: before the first slot's value, between the slots, after the second. */
  readonly parts: readonly [Uint8Array, Uint8Array, Uint8Array]
  /** Which field each slot holds, in frame order. */
  readonly slots: readonly [Slot, Slot]
  /** Array items plus map entries in the frame (the integers in the slots add none). */
  readonly elements: number
  /** How many changes the frame carries. */
  readonly changes: number
}

/** Only the type rules matter for the self-check, not the sizes (as in `codec.ts`). */
const UNBOUNDED: CodecLimits = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }

/**
 * Encodes `message` once in wire `version`, leaving its `sub` and `frame` open (their
 * values here are placeholders). Throws {@link InvalidValueError} for what
 * {@link encodeMessage} refuses; the frame is self-checked once here, not per subscriber.
 */
export function encodeSharedChanges(message: NumberedChangesMessage, version = 1): SharedChangesFrame {
  const data = (version >= 2 ? packMessage(message) : message) as Readonly<Record<string, unknown>>
  // The keys msgpackr writes: own enumerable ones whose value is not undefined (codec.ts `skipValues`), in order.
  const keys: string[] = []
  for (const key in data) if (Object.hasOwn(data, key) && data[key] !== undefined) keys.push(key)
  const parts: Uint8Array[] = []
  const slots: Slot[] = []
  let pieces: Uint8Array[] = [mapHeader(keys.length)]
  for (const key of keys) {
    pieces.push(encodeChecked(key))
    if (key === 'sub' || key === 'frame') {
      parts.push(concatBytes(pieces))
      slots.push(key)
      pieces = []
    } else {
      pieces.push(encodeChecked(data[key] as Value))
    }
  }
  parts.push(concatBytes(pieces))
  if (parts.length !== 3) throw new InvalidValueError('A shared changes frame needs both sub and frame, once each')
  const shared: SharedChangesFrame = { parts: parts as [Uint8Array, Uint8Array, Uint8Array], slots: slots as [Slot, Slot], elements: 0, changes: message.changes.length }
  // The self-check encodeMessage runs on every frame, once for all: the slots hold plain integers.
  const sample = stampChanges(shared, message.sub, message.frame)
  let elements: number
  try {
    elements = scanFrame(sample, UNBOUNDED, 'encode')
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${error instanceof Error ? error.message : String(error)}`)
  }
  return { ...shared, elements }
}

/** The frame of `shared` for subscription `sub`, numbered `frame`: the bytes `encodeMessage` gives for that message. */
export function stampChanges(shared: SharedChangesFrame, sub: number, frame: number): Uint8Array {
  const [before, between, after] = shared.parts
  const first = shared.slots[0] === 'sub' ? sub : frame
  const second = shared.slots[0] === 'sub' ? frame : sub
  const out = new Uint8Array(before.length + uintSize(first) + between.length + uintSize(second) + after.length)
  out.set(before, 0)
  let at = writeUint(out, before.length, first)
  out.set(between, at)
  at = writeUint(out, at + between.length, second)
  out.set(after, at)
  return out
}

/** msgpackr's map header for `count` entries. */
function mapHeader(count: number): Uint8Array {
  if (count < 0x10) return Uint8Array.of(0x80 | count)
  if (count < 0x10000) return Uint8Array.of(0xde, count >> 8, count & 0xff)
  return Uint8Array.of(0xdf, count >>> 24, (count >> 16) & 0xff, (count >> 8) & 0xff, count & 0xff)
}

/** Bytes msgpackr writes for `value`: the uint32 widths by hand, anything else as msgpackr encodes it. */
function uintSize(value: number): number {
  if (value >>> 0 !== value) return encodeChecked(value).length
  return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : 5
}

/** Writes `value` at `at` as msgpackr does (with `useRecords: false`, fixints up to 0x7f); returns the position after it. */
function writeUint(out: Uint8Array, at: number, value: number): number {
  if (value >>> 0 !== value) {
    const bytes = encodeChecked(value)
    out.set(bytes, at)
    return at + bytes.length
  }
  if (value < 0x80) {
    out[at] = value
    return at + 1
  }
  if (value < 0x100) {
    out[at] = 0xcc
    out[at + 1] = value
    return at + 2
  }
  if (value < 0x10000) {
    out[at] = 0xcd
    out[at + 1] = value >> 8
    out[at + 2] = value & 0xff
    return at + 3
  }
  out[at] = 0xce
  out[at + 1] = value >>> 24
  out[at + 2] = (value >> 16) & 0xff
  out[at + 3] = (value >> 8) & 0xff
  out[at + 4] = value & 0xff
  return at + 5
}
