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
 * Why a scanner of our own: msgpackr trusts length headers (a 5-byte `array32` header can
 * ask for 4 billion slots), recurses without a bound, and accepts extension types that
 * build records, sets, errors and regexps. The scan walks the bytes iteratively, in one
 * pass, and rejects such frames with a typed error in time linear in the frame size.
 */
import { Packr, type Options } from 'msgpackr'
import { DecodeError, DecodeLimitError, FrameTooLargeError, InvalidMessageError, InvalidValueError } from '../errors'
import type { Change } from '../types'
import { isWellFormedUtf8 } from '../unicode'
import { z } from 'zod'
import { MESSAGE_LIMITS, PROTOCOL_VERSION, changeSchema, changesSchema, clientMessageSchema, serverMessageSchema, type ClientMessage, type ServerMessage } from './messages'
import { isCheckedChange } from './change-batch'
import { packMessage, unpackMessage } from './wire-v2'

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

/** msgpack's timestamp extension (Date). */
const EXT_TIMESTAMP = -1
/** msgpackr's bigint extension (`useBigIntExtension`), found by experiment with msgpackr 2.1.3: `d8 42 …`. */
const EXT_BIGINT = 0x42
/** msgpackr (and notepack) write `undefined` as fixext1 type 0; found by experiment (`d4 00 00`). */
const EXT_UNDEFINED = 0

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
  let packed: Uint8Array
  try {
    packed = packr.pack(value)
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}. Only null, booleans, numbers, bigints, strings, Date, Uint8Array, arrays and plain objects can be sent`, { reason: describe(error) })
  }
  // msgpackr hands out views into its shared, reused buffer: copy so the frame owns its bytes.
  const frame = new Uint8Array(packed)
  try {
    scanFrame(frame, UNBOUNDED, 'encode')
  } catch (error) {
    throw new InvalidValueError(`Cannot encode this value: ${describe(error)}`)
  }
  return frame
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
  const result = (checkedChanges ? unpackedChangesSchema : serverMessageSchema).safeParse(data)
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

/**
 * A `changes` message whose list came out of a packed batch: the unpacker already held
 * each change to the change schema's rules, so the schema checks the envelope and takes
 * the changes as they are (validation once, not twice).
 */
const unpackedChangesSchema = changesSchema.extend({
  changes: z.array(z.custom<z.infer<typeof changeSchema>>(isCheckedChange, { message: 'a checked change' })).max(MESSAGE_LIMITS.maxChangesPerFrame),
})

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
 * @internal Walks the msgpack structure of `bytes` without building any value and throws
 * unless it is exactly one value within `limits` that uses only accepted types.
 * Iterative (an explicit stack), one pass, no allocation proportional to the headers.
 * Returns the number of array items plus map entries it counted.
 */
export function scanFrame(bytes: Uint8Array, limits: CodecLimits, mode: 'decode' | 'encode' = 'decode'): number {
  const length = bytes.length
  if (length > limits.maxFrameBytes) {
    throw new FrameTooLargeError(`Frame of ${length} bytes exceeds the limit of ${limits.maxFrameBytes} bytes; send smaller batches`, { bytes: length, limit: limits.maxFrameBytes })
  }
  if (length === 0) throw new DecodeError('Frame is empty; expected one msgpack value')
  return new FrameScan(bytes, limits, mode).run()
}

/** The state of one {@link scanFrame} pass (a class, so its helpers are not closures re-created per call). */
class FrameScan {
  readonly bytes: Uint8Array
  readonly length: number
  readonly limits: CodecLimits
  readonly mode: 'decode' | 'encode'
  // pending[d] = values still to read in the container open at depth d (depth 0 = the frame itself).
  readonly pending: number[] = [1]
  // keyed[d] = the container at depth d is a map, so every other value is a key.
  readonly keyed: boolean[] = [false]
  depth = 0
  elements = 0
  pos = 0

  constructor(bytes: Uint8Array, limits: CodecLimits, mode: 'decode' | 'encode') {
    this.bytes = bytes
    this.length = bytes.length
    this.limits = limits
    this.mode = mode
  }

  remaining(): number {
    return this.length - this.pos
  }

  need(count: number, what: string): void {
    if (count > this.length - this.pos) throw new DecodeError(`Frame is truncated: ${what} needs ${count} bytes but only ${this.length - this.pos} remain`, { offset: this.pos })
  }

  readUint(size: number): number {
    this.need(size, 'a length header')
    let value = 0
    for (let i = 0; i < size; i++) value = value * 256 + (this.bytes[this.pos + i] as number)
    this.pos += size
    return value
  }

  declared(count: number, what: string): void {
    // Every declared byte, and every declared item (at least one byte each), must fit in what is left.
    if (count > this.remaining()) {
      throw new DecodeLimitError(`${what} length header says ${count} but only ${this.remaining()} bytes remain`, { offset: this.pos, declared: count, remaining: this.remaining() })
    }
  }

  open(items: number, isMap: boolean): void {
    const values = isMap ? items * 2 : items
    this.declared(values, isMap ? 'map' : 'array')
    this.elements += items
    if (this.elements > this.limits.maxElements) {
      throw new DecodeLimitError(`Frame holds more than ${this.limits.maxElements} array items and map entries; send smaller batches`, { limit: this.limits.maxElements, offset: this.pos })
    }
    if (this.depth + 1 > this.limits.maxDepth) {
      throw new DecodeLimitError(`Frame nests deeper than ${this.limits.maxDepth} levels`, { limit: this.limits.maxDepth, offset: this.pos })
    }
    if (values > 0) {
      this.depth++
      this.pending[this.depth] = values
      this.keyed[this.depth] = isMap
    }
  }

  skip(size: number, what: string): void {
    this.declared(size, what)
    this.pos += size
  }

  str(size: number): void {
    this.declared(size, 'str')
    // UTF-8 cannot carry a lone surrogate: an encoder writes invalid bytes for one (or U+FFFD), and replicas would diverge.
    if (!isWellFormedUtf8(this.bytes, this.pos, this.pos + size)) {
      throw new DecodeError(
        this.mode === 'encode'
          ? 'a string contains a lone surrogate (half of a UTF-16 pair), which UTF-8 cannot carry; use well-formed text'
          : 'Frame holds a string that is not well-formed UTF-8 (e.g. an encoded lone surrogate); strings must be well-formed Unicode',
        { offset: this.pos },
      )
    }
    this.pos += size
  }

  fixed(size: number, what: string): void {
    this.need(size, what)
    this.pos += size
  }

  ext(size: number, type: number): void {
    if (type === EXT_TIMESTAMP) {
      if (size !== 4 && size !== 8 && size !== 12) {
        // msgpackr writes an invalid Date as a 1-byte timestamp.
        throw new DecodeError(this.mode === 'encode' ? 'an invalid Date is not a value' : `Timestamp extension of ${size} bytes; expected 4, 8 or 12`, { offset: this.pos })
      }
      if (size <= this.remaining()) checkTimestamp(this.bytes, this.pos, size)
    } else if (type === EXT_BIGINT) {
      if (size === 0) throw new DecodeError('Empty bigint extension', { offset: this.pos })
    } else if (type === EXT_UNDEFINED) {
      throw new DecodeError(this.mode === 'encode' ? 'undefined, functions and symbols are not values (leave the field out instead)' : 'Frame contains undefined, which is not a value', { offset: this.pos })
    } else {
      throw new DecodeError(`Unsupported msgpack extension type ${type}`, { offset: this.pos, extType: type })
    }
    this.skip(size, 'ext')
  }

  run(): number {
    while (this.depth >= 0) {
      const left = this.pending[this.depth] as number
      if (left === 0) {
        this.depth--
        continue
      }
      this.pending[this.depth] = left - 1
      if (this.pos >= this.length) throw new DecodeError('Frame is truncated: it ends before its last value', { offset: this.pos })
      const isKey = (this.keyed[this.depth] as boolean) && left % 2 === 0
      const byte = this.bytes[this.pos++] as number
      if (isKey && !((byte >= 0xa0 && byte <= 0xbf) || byte === 0xd9 || byte === 0xda || byte === 0xdb)) {
        throw new DecodeError('Map keys must be strings', { offset: this.pos - 1 })
      }
      if (byte <= 0x7f || byte >= 0xe0) continue // fixints
      if (byte <= 0x8f) {
        this.open(byte & 0x0f, true)
        continue
      }
      if (byte <= 0x9f) {
        this.open(byte & 0x0f, false)
        continue
      }
      if (byte <= 0xbf) {
        this.str(byte & 0x1f)
        continue
      }
      switch (byte) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break
        case 0xc1:
          throw new DecodeError('Frame contains the reserved byte 0xc1', { offset: this.pos - 1 })
        case 0xc4:
          this.skip(this.readUint(1), 'bin')
          break
        case 0xc5:
          this.skip(this.readUint(2), 'bin')
          break
        case 0xc6:
          this.skip(this.readUint(4), 'bin')
          break
        case 0xc7:
        case 0xc8:
        case 0xc9: {
          const size = this.readUint(byte === 0xc7 ? 1 : byte === 0xc8 ? 2 : 4)
          this.need(1, 'an ext type')
          const type = ((this.bytes[this.pos++] as number) << 24) >> 24
          this.ext(size, type)
          break
        }
        case 0xca:
          this.fixed(4, 'float32')
          break
        case 0xcb:
          this.fixed(8, 'float64')
          break
        case 0xcc:
        case 0xd0:
          this.fixed(1, 'int8')
          break
        case 0xcd:
        case 0xd1:
          this.fixed(2, 'int16')
          break
        case 0xce:
        case 0xd2:
          this.fixed(4, 'int32')
          break
        case 0xcf:
        case 0xd3:
          this.fixed(8, 'int64')
          break
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: {
          this.need(1, 'an ext type')
          const type = ((this.bytes[this.pos++] as number) << 24) >> 24
          this.ext(1 << (byte - 0xd4), type)
          break
        }
        case 0xd9:
          this.str(this.readUint(1))
          break
        case 0xda:
          this.str(this.readUint(2))
          break
        case 0xdb:
          this.str(this.readUint(4))
          break
        case 0xdc:
          this.open(this.readUint(2), false)
          break
        case 0xdd:
          this.open(this.readUint(4), false)
          break
        case 0xde:
          this.open(this.readUint(2), true)
          break
        case 0xdf:
          this.open(this.readUint(4), true)
          break
      }
    }
    if (this.pos !== this.length) {
      throw new DecodeError(`Frame has ${this.length - this.pos} trailing bytes after its value`, { offset: this.pos, trailing: this.length - this.pos })
    }
    return this.elements
  }
}

/** Largest |seconds| a `Date` can hold (±8.64e15 ms). */
const MAX_DATE_SECONDS = 8.64e12

/**
 * Refuses timestamps msgpackr would decode wrongly: nanoseconds of a second beyond 999,999,999,
 * and 96-bit seconds outside the range of `Date` (msgpackr drops their high bits silently).
 */
function checkTimestamp(bytes: Uint8Array, at: number, size: number): void {
  if (size === 4) return
  const word = (offset: number): number => (((bytes[at + offset] as number) << 24) | ((bytes[at + offset + 1] as number) << 16) | ((bytes[at + offset + 2] as number) << 8) | (bytes[at + offset + 3] as number)) >>> 0
  const nanoseconds = size === 8 ? word(0) >>> 2 : word(0)
  if (nanoseconds > 999_999_999) throw new DecodeError(`Timestamp with ${nanoseconds} nanoseconds; at most 999999999`, { offset: at })
  if (size === 12) {
    const high = word(4) | 0
    const seconds = high * 4294967296 + word(8)
    if (Math.abs(seconds) > MAX_DATE_SECONDS) throw new DecodeError('Timestamp outside the range of Date', { offset: at })
  }
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
