/**
 * The codec's structural scan: walks a msgpack frame's bytes without building any value and
 * refuses, with a typed error and in time linear in the frame size, what msgpackr would trust
 * (length headers asking for billions of slots, unbounded nesting, extension types that build
 * records, sets, errors or regexps, timestamps it would decode wrongly, ill-formed UTF-8).
 * codec.ts runs it before every decode and as the self-check after every encode.
 */
import { DecodeError, DecodeLimitError, FrameTooLargeError } from '../errors'
import { isWellFormedUtf8 } from '../unicode'
import type { CodecLimits } from './codec'

/** msgpack's timestamp extension (Date). */
const EXT_TIMESTAMP = -1
/** msgpackr's bigint extension (`useBigIntExtension`), found by experiment with msgpackr 2.1.3: `d8 42 …`. */
const EXT_BIGINT = 0x42
/** msgpackr (and notepack) write `undefined` as fixext1 type 0; found by experiment (`d4 00 00`). */
const EXT_UNDEFINED = 0

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
  return new FrameScanner(bytes, limits, mode).run()
}

/**
 * The state of one {@link scanFrame} walk. A class rather than closures inside the function:
 * the scan runs once per stored record a relay streams and once per value measured, and
 * closures would be allocated afresh on every call.
 */
class FrameScanner {
  readonly #bytes: Uint8Array
  readonly #length: number
  readonly #limits: CodecLimits
  readonly #mode: 'decode' | 'encode'
  // pending[d] = values still to read in the container open at depth d (depth 0 = the frame itself).
  readonly #pending: number[] = [1]
  // keyed[d] = the container at depth d is a map, so every other value is a key.
  readonly #keyed: boolean[] = [false]
  #depth = 0
  #elements = 0
  #pos = 0

  constructor(bytes: Uint8Array, limits: CodecLimits, mode: 'decode' | 'encode') {
    this.#bytes = bytes
    this.#length = bytes.length
    this.#limits = limits
    this.#mode = mode
  }

  #remaining(): number {
    return this.#length - this.#pos
  }

  #need(count: number, what: string): void {
    if (count > this.#length - this.#pos) throw new DecodeError(`Frame is truncated: ${what} needs ${count} bytes but only ${this.#length - this.#pos} remain`, { offset: this.#pos })
  }

  #readUint(size: number): number {
    this.#need(size, 'a length header')
    let value = 0
    for (let i = 0; i < size; i++) value = value * 256 + (this.#bytes[this.#pos + i] as number)
    this.#pos += size
    return value
  }

  #declared(count: number, what: string): void {
    // Every declared byte, and every declared item (at least one byte each), must fit in what is left.
    if (count > this.#remaining()) {
      throw new DecodeLimitError(`${what} length header says ${count} but only ${this.#remaining()} bytes remain`, { offset: this.#pos, declared: count, remaining: this.#remaining() })
    }
  }

  #open(items: number, isMap: boolean): void {
    const values = isMap ? items * 2 : items
    this.#declared(values, isMap ? 'map' : 'array')
    this.#elements += items
    if (this.#elements > this.#limits.maxElements) {
      throw new DecodeLimitError(`Frame holds more than ${this.#limits.maxElements} array items and map entries; send smaller batches`, { limit: this.#limits.maxElements, offset: this.#pos })
    }
    if (this.#depth + 1 > this.#limits.maxDepth) {
      throw new DecodeLimitError(`Frame nests deeper than ${this.#limits.maxDepth} levels`, { limit: this.#limits.maxDepth, offset: this.#pos })
    }
    if (values > 0) {
      this.#depth++
      this.#pending[this.#depth] = values
      this.#keyed[this.#depth] = isMap
    }
  }

  #skip(size: number, what: string): void {
    this.#declared(size, what)
    this.#pos += size
  }

  #str(size: number): void {
    this.#declared(size, 'str')
    // UTF-8 cannot carry a lone surrogate: an encoder writes invalid bytes for one (or U+FFFD), and replicas would diverge.
    if (!isWellFormedUtf8(this.#bytes, this.#pos, this.#pos + size)) {
      throw new DecodeError(
        this.#mode === 'encode'
          ? 'a string contains a lone surrogate (half of a UTF-16 pair), which UTF-8 cannot carry; use well-formed text'
          : 'Frame holds a string that is not well-formed UTF-8 (e.g. an encoded lone surrogate); strings must be well-formed Unicode',
        { offset: this.#pos },
      )
    }
    this.#pos += size
  }

  #fixed(size: number, what: string): void {
    this.#need(size, what)
    this.#pos += size
  }

  #ext(size: number, type: number): void {
    const mode = this.#mode
    if (type === EXT_TIMESTAMP) {
      if (size !== 4 && size !== 8 && size !== 12) {
        // msgpackr writes an invalid Date as a 1-byte timestamp.
        throw new DecodeError(mode === 'encode' ? 'an invalid Date is not a value' : `Timestamp extension of ${size} bytes; expected 4, 8 or 12`, { offset: this.#pos })
      }
      if (size <= this.#remaining()) checkTimestamp(this.#bytes, this.#pos, size)
    } else if (type === EXT_BIGINT) {
      if (size === 0) throw new DecodeError('Empty bigint extension', { offset: this.#pos })
    } else if (type === EXT_UNDEFINED) {
      throw new DecodeError(mode === 'encode' ? 'undefined, functions and symbols are not values (leave the field out instead)' : 'Frame contains undefined, which is not a value', { offset: this.#pos })
    } else {
      throw new DecodeError(`Unsupported msgpack extension type ${type}`, { offset: this.#pos, extType: type })
    }
    this.#skip(size, 'ext')
  }

  #extType(): number {
    this.#need(1, 'an ext type')
    return ((this.#bytes[this.#pos++] as number) << 24) >> 24
  }

  run(): number {
    const bytes = this.#bytes
    const length = this.#length
    const pending = this.#pending
    const keyed = this.#keyed
    while (this.#depth >= 0) {
      const depth = this.#depth
      const left = pending[depth] as number
      if (left === 0) {
        this.#depth--
        continue
      }
      pending[depth] = left - 1
      if (this.#pos >= length) throw new DecodeError('Frame is truncated: it ends before its last value', { offset: this.#pos })
      const isKey = (keyed[depth] as boolean) && left % 2 === 0
      const byte = bytes[this.#pos++] as number
      if (isKey && !((byte >= 0xa0 && byte <= 0xbf) || byte === 0xd9 || byte === 0xda || byte === 0xdb)) {
        throw new DecodeError('Map keys must be strings', { offset: this.#pos - 1 })
      }
      if (byte <= 0x7f || byte >= 0xe0) continue // fixints
      if (byte <= 0x8f) {
        this.#open(byte & 0x0f, true)
        continue
      }
      if (byte <= 0x9f) {
        this.#open(byte & 0x0f, false)
        continue
      }
      if (byte <= 0xbf) {
        this.#str(byte & 0x1f)
        continue
      }
      switch (byte) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break
        case 0xc1:
          throw new DecodeError('Frame contains the reserved byte 0xc1', { offset: this.#pos - 1 })
        case 0xc4:
          this.#skip(this.#readUint(1), 'bin')
          break
        case 0xc5:
          this.#skip(this.#readUint(2), 'bin')
          break
        case 0xc6:
          this.#skip(this.#readUint(4), 'bin')
          break
        case 0xc7:
        case 0xc8:
        case 0xc9: {
          const size = this.#readUint(byte === 0xc7 ? 1 : byte === 0xc8 ? 2 : 4)
          this.#ext(size, this.#extType())
          break
        }
        case 0xca:
          this.#fixed(4, 'float32')
          break
        case 0xcb:
          this.#fixed(8, 'float64')
          break
        case 0xcc:
        case 0xd0:
          this.#fixed(1, 'int8')
          break
        case 0xcd:
        case 0xd1:
          this.#fixed(2, 'int16')
          break
        case 0xce:
        case 0xd2:
          this.#fixed(4, 'int32')
          break
        case 0xcf:
        case 0xd3:
          this.#fixed(8, 'int64')
          break
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          this.#ext(1 << (byte - 0xd4), this.#extType())
          break
        case 0xd9:
          this.#str(this.#readUint(1))
          break
        case 0xda:
          this.#str(this.#readUint(2))
          break
        case 0xdb:
          this.#str(this.#readUint(4))
          break
        case 0xdc:
          this.#open(this.#readUint(2), false)
          break
        case 0xdd:
          this.#open(this.#readUint(4), false)
          break
        case 0xde:
          this.#open(this.#readUint(2), true)
          break
        case 0xdf:
          this.#open(this.#readUint(4), true)
          break
      }
    }
    if (this.#pos !== length) {
      throw new DecodeError(`Frame has ${length - this.#pos} trailing bytes after its value`, { offset: this.#pos, trailing: length - this.#pos })
    }
    return this.#elements
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
