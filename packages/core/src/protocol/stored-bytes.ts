/**
 * Reading msgpack bytes the relay's store wrote (`stored-changes.ts`): skipping values while
 * counting their elements, finding strings, interning strings by their bytes, and a reused
 * output buffer. The bytes are trusted (written by core's codec, checked when stored), so
 * a read checks only what it needs to find its way; callers decline what they do not know.
 */
import { decode, encodeCheckedView, type CodecLimits } from './codec'

/** Decoding a stored string: the store's own bytes, no frame limits (the codec's UTF-8 check still runs). */
const UNBOUNDED: CodecLimits = { maxFrameBytes: Infinity, maxDepth: Infinity, maxElements: Infinity }

/** A growable byte buffer, reused from call to call (the frame is one copy out of it). */
export class Sink {
  bytes = new Uint8Array(64 * 1024)
  length = 0

  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return
    let size = this.bytes.length * 2
    while (size < this.length + n) size *= 2
    const grown = new Uint8Array(size)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  byte(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  copy(from: Uint8Array, start = 0, end = from.length): void {
    this.reserve(end - start)
    this.bytes.set(from.subarray(start, end), this.length)
    this.length += end - start
  }

  /** An array header as msgpackr writes it. */
  array(count: number): void {
    this.reserve(5)
    const b = this.bytes
    if (count < 0x10) b[this.length++] = 0x90 | count
    else if (count < 0x10000) {
      b[this.length++] = 0xdc
      b[this.length++] = count >> 8
      b[this.length++] = count & 0xff
    } else {
      b[this.length++] = 0xdd
      b[this.length++] = count >>> 24
      b[this.length++] = (count >> 16) & 0xff
      b[this.length++] = (count >> 8) & 0xff
      b[this.length++] = count & 0xff
    }
  }

  /** Encodes `value` with core's codec into the sink; returns the elements it holds. */
  encoded(value: unknown): number {
    const bytes = encodeCheckedView(value as never)
    this.copy(bytes)
    return elementsOf(bytes)
  }
}

/**
 * What the last {@link skip} found.elements and the last {@link text} found: module state rather
 * than a result object, so nothing is allocated per value read.
 */
export const found = {
  /** Array items plus map entries added by {@link skip} (the caller resets it). */
  elements: 0,
  /** The last string {@link text} found: its header, its text's start and end. */
  at: 0,
  start: 0,
  end: 0,
}

/**
 * The position after the msgpack value at `at` (trusted bytes: the store's own), adding
 * the array items and map entries it holds to {@link found.elements}; -1 past `end`.
 */
export function skip(b: Uint8Array, at: number, end: number): number {
  let remaining = 1
  let pos = at
  while (remaining > 0) {
    if (pos >= end) return -1
    remaining--
    const t = b[pos++] as number
    if (t < 0x80 || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue
    if (t < 0x90) {
      found.elements += t & 0x0f
      remaining += (t & 0x0f) * 2
    } else if (t < 0xa0) {
      found.elements += t & 0x0f
      remaining += t & 0x0f
    } else if (t < 0xc0) pos += t & 0x1f
    else {
      switch (t) {
        case 0xc4: case 0xd9: pos += 1 + (b[pos] as number); break
        case 0xc5: case 0xda: pos += 2 + uint(b, pos, 2); break
        case 0xc6: case 0xdb: pos += 4 + uint(b, pos, 4); break
        case 0xc7: pos += 2 + (b[pos] as number); break
        case 0xc8: pos += 3 + uint(b, pos, 2); break
        case 0xc9: pos += 5 + uint(b, pos, 4); break
        case 0xca: case 0xce: case 0xd2: pos += 4; break
        case 0xcb: case 0xcf: case 0xd3: pos += 8; break
        case 0xcc: case 0xd0: pos += 1; break
        case 0xcd: case 0xd1: pos += 2; break
        case 0xd4: pos += 2; break
        case 0xd5: pos += 3; break
        case 0xd6: pos += 5; break
        case 0xd7: pos += 9; break
        case 0xd8: pos += 17; break
        case 0xdc: case 0xde: {
          const n = uint(b, pos, 2)
          pos += 2
          found.elements += n
          remaining += t === 0xde ? n * 2 : n
          break
        }
        case 0xdd: case 0xdf: {
          const n = uint(b, pos, 4)
          pos += 4
          found.elements += n
          remaining += t === 0xdf ? n * 2 : n
          break
        }
        default: return -1
      }
    }
  }
  return pos > end ? -1 : pos
}

export function uint(b: Uint8Array, at: number, size: number): number {
  let value = 0
  for (let i = 0; i < size; i++) value = value * 256 + (b[at + i] as number)
  return value
}

/** Array items plus map entries in one encoded value. */
export function elementsOf(bytes: Uint8Array): number {
  found.elements = 0
  skip(bytes, 0, bytes.length)
  return found.elements
}

/** Whether the value at `at` is a msgpack string; where it lies goes to {@link found}. */
export function text(b: Uint8Array, at: number): boolean {
  const t = b[at] as number
  if (t >= 0xa0 && t < 0xc0) found.start = at + 1, found.end = found.start + (t & 0x1f)
  else if (t === 0xd9) found.start = at + 2, found.end = found.start + (b[at + 1] as number)
  else if (t === 0xda) found.start = at + 3, found.end = found.start + uint(b, at + 1, 2)
  else if (t === 0xdb) found.start = at + 5, found.end = found.start + uint(b, at + 1, 4)
  else return false
  found.at = at
  return true
}

/** The msgpack string whose header is at `at` and whose text ends at `end`, decoded; undefined when it is not well-formed. */
export function decodeText(b: Uint8Array, at: number, end: number): string | undefined {
  try {
    return decode(b.subarray(at, end), UNBOUNDED) as string
  } catch {
    return undefined
  }
}

export function same(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number): boolean {
  for (let i = aStart, j = bStart; i < aEnd; i++, j++) if (a[i] !== b[j]) return false
  return true
}

export function sameRange(b: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): boolean {
  return aEnd - aStart === bEnd - bStart && same(b, aStart, aEnd, b, bStart)
}

/** Strings interned by their UTF-8 bytes (no string built for one seen before). */
export class ByteTable {
  readonly entries: string[] = []
  readonly #bytes: Uint8Array[] = []

  /**
   * The index of the text `b[start, end)`, adding it while below `limit`; -1 when full, -2
   * when it is not well-formed UTF-8. The text is the end of the msgpack string whose header
   * is at `at`, past its first `skip` (ASCII) characters.
   */
  ref(b: Uint8Array, start: number, end: number, limit: number, at: number, skip = 0, hint = 0): number {
    const n = this.#bytes.length
    for (let k = 0; k < n; k++) {
      const i = (hint + k) % n
      const entry = this.#bytes[i] as Uint8Array
      if (entry.length === end - start && same(b, start, end, entry, 0)) return i
    }
    if (n >= limit) return -1
    const decoded = decodeText(b, at, end)
    if (decoded === undefined) return -2
    this.#bytes.push(b.slice(start, end))
    this.entries.push(decoded.slice(skip))
    return n
  }
}

