/**
 * The wire codec: msgpack via msgpackr, configured for lossless and safe data, with
 * decoding limits enforced by a structural scan *before* msgpackr allocates anything.
 *
 * What round-trips exactly: null, booleans, numbers (except `-0`, which msgpack writes as
 * the integer 0, so it comes back as `0`; `valuesEqual(-0, 0)` holds anyway), bigints of
 * any size (int64/uint64 when they fit, msgpackr's bigint extension otherwise), strings,
 * `Date` (timestamp extension, millisecond precision), `Uint8Array` (bin; Node `Buffer`s
 * come back as plain `Uint8Array`s), arrays, and plain objects with any string keys —
 * `__proto__`, `constructor` and `""` included, as own data properties.
 *
 * `undefined` is not a value: an object field holding `undefined` is left out (a missing
 * optional field is absent), and `undefined` anywhere else is an {@link InvalidValueError}.
 *
 * Why a scanner of our own (frame-scan.ts): msgpackr trusts length headers (a 5-byte `array32` header can
 * ask for 4 billion slots), recurses without a bound, and accepts extension types that
 * build records, sets, errors and regexps. The scan walks the bytes iteratively, in one
 * pass, and rejects such frames with a typed error in time linear in the frame size.
 */
import { Packr, type Options } from 'msgpackr'
import { DecodeError, DecodeLimitError, FrameTooLargeError, InvalidMessageError, InvalidValueError } from '../errors'
import type { Change, Value } from '../types'
import { MESSAGE_LIMITS, PROTOCOL_VERSION, changeSchema, changesSchema, clientMessageSchema, serverMessageSchema, type ClientMessage, type ServerMessage } from './messages'
import { isCheckedChange } from './change-batch'
import { packMessage, unpackMessage } from './wire-v2'
import { scanFrame } from './frame-scan'

export { scanFrame }

/** Bounds on one frame, checked before any decoding work is done. */
export interface CodecLimits {
  /** Largest frame accepted, in bytes ({@link FrameTooLargeError} beyond it). */
  readonly maxFrameBytes: number
  /** Deepest nesting of arrays and maps (a top-level array is depth 1). */
  readonly maxDepth: number
  /** Most array items plus map entries in one frame, all levels together. */
  readonly maxElements: number
}

/** The limits a relay and a worker apply unless configured otherwise. */
export const DEFAULT_CODEC_LIMITS: CodecLimits = Object.freeze({
  maxFrameBytes: 1024 * 1024,
  // At least VALUE_LIMITS.maxDepth + envelopeDepth (40): every value the write API accepts fits a frame (value-rules.test.ts).
  maxDepth: 64,
  maxElements: 250_000,
})

const packrOptions: Options & { skipValues: unknown[] } = {
  useRecords: false,
  mapsAsObjects: false,
  useBigIntExtension: true,
  int64AsType: 'bigint',
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  // Leaves out object fields whose value is undefined, as JSON does (not in msgpackr's typings).
  skipValues: [undefined],
}
const packr = new Packr(packrOptions)

/** Limits for the self-check after encoding: only the type rules matter there, not the sizes. */
const UNBOUNDED: CodecLimits = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }

/**
 * Encodes a value as one msgpack frame. Throws {@link InvalidValueError} for what cannot
 * be sent losslessly (`undefined` outside an object field, functions, symbols, cycles).
 */
export function encode(value: unknown): Uint8Array {
  return encodeCounted(value).frame
}

/**
 * Encodes a value that has already passed `assertStoredValue` (or `assertValue`):
 * the bytes {@link encode} gives, without its self-check scan, which for such a value can
 * only repeat what the assertion established (validate once, at the boundary). Stores use
 * it for what they checked on the way in. The frame owns its bytes (one copy out of
 * msgpackr's shared buffer). Throws {@link InvalidValueError} when msgpackr fails.
 */
export function encodeChecked(value: Value): Uint8Array {
  return new Uint8Array(encodeCheckedView(value))
}

/**
 * {@link encodeChecked} without the copy: a view into msgpackr's shared buffer, valid only
 * until the next encode of this module. For a caller that hands the bytes on at once to
 * something that copies them (a synchronous LMDB put inside a write transaction), where the
 * copy would be one more allocation per value for nothing.
 */
export function encodeCheckedView(value: Value): Uint8Array {
  try {
    return packr.pack(value)
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}`, { reason: describe(error) })
  }
}

/** `pieces` one after the other, in one new array (frames assembled from encoded parts). */
export function concatBytes(pieces: readonly Uint8Array[]): Uint8Array {
  let length = 0
  for (const piece of pieces) length += piece.length
  const out = new Uint8Array(length)
  let at = 0
  for (const piece of pieces) {
    out.set(piece, at)
    at += piece.length
  }
  return out
}

/** A frame and the array items plus map entries it holds (what {@link CodecLimits.maxElements} counts). */
export interface CountedFrame {
  readonly frame: Uint8Array
  readonly elements: number
}

/** {@link encode}, also returning the frame's element count (from the self-check's scan, at no extra cost). */
function encodeCounted(value: unknown): CountedFrame {
  let packed: Uint8Array
  try {
    packed = packr.pack(value)
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}. Only null, booleans, numbers, bigints, strings, Date, Uint8Array, arrays and plain objects can be sent`, { reason: describe(error) })
  }
  // msgpackr hands out views into its shared, reused buffer: copy so the frame owns its bytes.
  const frame = new Uint8Array(packed)
  let elements: number
  try {
    elements = scanFrame(frame, UNBOUNDED, 'encode')
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}`)
  }
  return { frame, elements }
}

/** The exact size of a value as one msgpack frame. */
export interface FrameSize {
  /** Encoded bytes. */
  readonly bytes: number
  /** Array items plus map entries, all levels together (what {@link CodecLimits.maxElements} counts). */
  readonly elements: number
}

/**
 * The exact size `value` takes when encoded (bytes, and elements as the decoder counts
 * them). Throws {@link InvalidValueError} for what {@link encode} refuses. Used to pack
 * frames by bytes and to refuse, at write time, what could never be sent.
 */
export function measure(value: unknown): FrameSize {
  let packed: Uint8Array
  try {
    packed = packr.pack(value)
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}`, { reason: describe(error) })
  }
  try {
    return { bytes: packed.length, elements: scanFrame(packed, UNBOUNDED, 'encode') }
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}`)
  }
}

/**
 * Encodes a protocol message (see `messages.ts`) in wire `version`, the one `hello`
 * negotiated for the session. Version 1 (the default, which every peer reads) is
 * {@link encode} of the message; version 2 packs change lists (see `wire-v2.ts`) and is
 * never larger.
 */
export function encodeMessage(message: ClientMessage | ServerMessage, version = 1): Uint8Array {
  return encode(version >= 2 ? packMessage(message) : message)
}

/**
 * {@link encodeMessage}, also returning the frame's element count: a sender that encodes
 * first checks the frame against {@link CodecLimits} itself instead of measuring each item.
 */
export function encodeMessageCounted(message: ClientMessage | ServerMessage, version = 1): CountedFrame {
  return encodeCounted(version >= 2 ? packMessage(message) : message)
}

/**
 * Decodes one msgpack frame into plain data after checking it against `limits`.
 * Throws {@link FrameTooLargeError}, {@link DecodeLimitError} or {@link DecodeError};
 * never anything else.
 */
export function decode(bytes: Uint8Array | ArrayBuffer, limits: Partial<CodecLimits> = DEFAULT_CODEC_LIMITS): unknown {
  const frame = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)
  const full: CodecLimits = limits === DEFAULT_CODEC_LIMITS ? DEFAULT_CODEC_LIMITS : { ...DEFAULT_CODEC_LIMITS, ...limits }
  scanFrame(frame, full)
  let raw: unknown
  try {
    raw = packr.unpack(frame)
  } catch (error) {
    throw new DecodeError(`Frame is not valid msgpack: ${describe(error)}`)
  }
  return normalize(raw)
}

/**
 * Decodes and validates a message a client sent in wire `version` (a version-2 reader also
 * reads version-1 frames; version 1 refuses packed ones). Throws like {@link decode}, and
 * {@link InvalidMessageError} (with `details.issues`) when the data is not a client message.
 */
export function decodeClientMessage(bytes: Uint8Array | ArrayBuffer, limits?: Partial<CodecLimits>, version: number = PROTOCOL_VERSION): ClientMessage {
  // An unpacked `ops` batch needs nothing special: its changes are checked one by one by `parseChange`.
  const { data } = decodeVersion(bytes, limits, version)
  const result = clientMessageSchema.safeParse(data)
  if (!result.success) throw invalidMessage('client', data, result.error.issues)
  return result.data
}

/**
 * Decodes and validates a message a relay sent in wire `version` (as {@link decodeClientMessage}).
 * Throws like {@link decode}, and {@link InvalidMessageError} (with `details.issues`) when
 * the data is not a server message.
 */
export function decodeServerMessage(bytes: Uint8Array | ArrayBuffer, limits?: Partial<CodecLimits>, version: number = PROTOCOL_VERSION): ServerMessage {
  const { data, checkedChanges } = decodeVersion(bytes, limits, version)
  if (checkedChanges) return parseUnpackedChanges(data as { readonly changes: Change[] })
  const result = serverMessageSchema.safeParse(data)
  if (!result.success) throw invalidMessage('server', data, result.error.issues)
  return result.data
}

/** Decodes a frame and, from version 2 on, turns packed fields back into the message's own (checking them). */
function decodeVersion(bytes: Uint8Array | ArrayBuffer, limits: Partial<CodecLimits> | undefined, version: number): { data: unknown; checkedChanges: boolean } {
  const data = decode(bytes, limits)
  if (version < 2) return { data, checkedChanges: false }
  const { message, checkedChanges } = unpackMessage(data)
  return { data: message, checkedChanges }
}

/** A `changes` message without its list. */
const changesEnvelopeSchema = changesSchema.omit({ changes: true })

/**
 * A `changes` message whose list came out of a packed batch: the unpacker already held
 * every change to the change schema's rules, so the schema checks the other fields and
 * the list only its length; the changes are taken as they are (validation once, not twice,
 * and no pass over the list at all).
 */
function parseUnpackedChanges(data: { readonly changes: Change[] }): ServerMessage {
  const { changes, ...envelope } = data
  const result = changesEnvelopeSchema.safeParse(envelope)
  const issues: Issue[] = result.success ? [] : [...result.error.issues]
  if (changes.length > MESSAGE_LIMITS.maxChangesPerFrame) issues.push({ path: ['changes'], message: `Too big: expected array to have <=${MESSAGE_LIMITS.maxChangesPerFrame} items` })
  if (!result.success || issues.length > 0) throw invalidMessage('server', data, issues)
  return { ...result.data, changes }
}

/**
 * Validates one change of an `ops` batch (the batch's envelope is checked by
 * {@link decodeClientMessage}; each change on its own, so a malformed one is refused alone).
 * Throws {@link InvalidMessageError} with `details.issues`.
 */
export function parseChange(data: unknown): Change {
  if (isCheckedChange(data)) return data as Change
  const result = changeSchema.safeParse(data)
  if (result.success) return result.data
  const formatted = formatIssues(result.error.issues)
  throw new InvalidMessageError(`This change is malformed (${formatted.join('; ')}); it was refused, the rest of its batch was not`, { issues: formatted })
}

/** A zod issue, reduced to what a message needs (zod's own type is not part of our API). */
interface Issue {
  readonly path: readonly PropertyKey[]
  readonly message: string
}

/** At most this many issues are reported, so a hostile frame cannot make the error huge. */
const MAX_ISSUES = 10

/** @internal Formats zod issues as short `path: message` strings. */
export function formatIssues(issues: readonly Issue[]): string[] {
  return issues.slice(0, MAX_ISSUES).map((issue) => {
    const path = issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('')
    return `${path === '' ? '(message)' : path.slice(path.startsWith('.') ? 1 : 0)}: ${issue.message}`
  })
}

function invalidMessage(side: 'client' | 'server', data: unknown, issues: readonly Issue[]): InvalidMessageError {
  const type = typeof data === 'object' && data !== null && !Array.isArray(data) && typeof (data as { type?: unknown }).type === 'string' ? (data as { type: string }).type : undefined
  const formatted = formatIssues(issues)
  const what = type === undefined ? `a frame without a message type` : `a "${type.slice(0, 64)}" message`
  return new InvalidMessageError(`Received ${what} that is not a valid ${side} message (${formatted.join('; ')}); check that both sides run compatible Outpost versions`, {
    issues: formatted,
    ...(type === undefined ? {} : { type: type.slice(0, 64) }),
  })
}

/**
 * Turns msgpackr's output into Outpost values: maps become plain objects whose every key
 * is an own data property (so `__proto__` is data, not a prototype), bins become plain
 * `Uint8Array`s that own their bytes (not views into the frame or Node `Buffer`s), and
 * invalid dates are refused. Recursion is bounded by the scan's `maxDepth`.
 */
function normalize(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (value instanceof Map) {
    const object: Record<string, unknown> = {}
    for (const [key, item] of value) {
      // The scan already refused non-string keys; this keeps the type honest.
      if (typeof key !== 'string') throw new DecodeError('Map keys must be strings')
      // Plain assignment is much faster, but for names Object.prototype defines (`__proto__`
      // above all) it would call a setter or, with a frozen prototype, throw.
      if (key in Object.prototype) Object.defineProperty(object, key, { value: normalize(item), enumerable: true, writable: true, configurable: true })
      else object[key] = normalize(item)
    }
    return object
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = normalize(value[i])
    return value
  }
  if (value instanceof Uint8Array) return new Uint8Array(value)
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new DecodeError('Frame contains a timestamp outside the range of Date')
    return value
  }
  throw new DecodeError(`Frame decoded to an unsupported ${Object.prototype.toString.call(value)}`)
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
